"""One NsJail process: spawn it, read its output and log to the end, stop it, reap it.

This is process handling apart from policy: it knows nothing of where limits come from, of
files or of HTTP. The engine (`snekbox.nsjail`) decides what to run and hands the argv, the
time limit and the output cap in; this module hands back a `JailOutcome`.
"""

from __future__ import annotations

import codecs
import logging
import os
import select
import selectors
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from snekbox.result import EvalError

__all__ = (
    "OUTPUT_LIMIT_RETURNCODE",
    "WATCHDOG_GRACE",
    "CappedText",
    "JailOutcome",
    "await_jail",
    "read_available",
    "run_jail",
    "spawn_jail",
    "stop_jail",
)

log = logging.getLogger("snekbox.nsjail")  # the original's logger for everything of a run

OUTPUT_LIMIT_RETURNCODE = 128 + signal.SIGTERM
"""Reported when the output cap is hit: the run is stopped as if by SIGTERM (143)."""
WATCHDOG_GRACE = 3.0
"""Seconds past a run's time limit before snekbox kills NsJail itself (NsJail is stuck)."""
TERMINATE_GRACE = 2.0
"""Seconds NsJail gets to stop its jail after SIGTERM before it is killed."""


@dataclass(frozen=True, slots=True)
class JailOutcome:
    """How one NsJail process went, as facts for the verdict and the result."""

    returncode: int | None
    stdout: str
    truncated: bool
    """The output passed the cap; NsJail was stopped and ``stdout`` is cut at the cap."""
    timed_out: bool
    """snekbox stopped the run at its time limit."""
    log_lines: list[str]
    duration: float
    cpu_time: float | None


INVALID_OUTPUT = "UnicodeDecodeError: invalid Unicode in output pipe"
"""The reason a run whose output is not UTF-8 gets (the original's words)."""


@dataclass(frozen=True, slots=True)
class _Read:
    """What reading a run's pipes to their end found."""

    text: str
    truncated: bool
    timed_out: bool
    log: bytes
    nsjail_killed: bool
    """The watchdog had to kill NsJail itself (it outlived the time limit's grace)."""


def run_jail(
    args: list[str],
    log_read: int,
    log_write: int,
    time_limit: int,
    max_output: int,
    read_chunk_size: int,
    stop_program: Callable[[], None],
) -> JailOutcome:
    """Spawn NsJail, read its output and log to the end, stop it at the limit, reap it.

    ``log_write`` is the write end of the log pipe, already named in ``args``; it is closed
    here once NsJail holds it. Raises ``EvalError`` when NsJail cannot be started.
    """
    started = time.monotonic()
    process = spawn_jail(args, log_write)
    return await_jail(
        process, log_read, started, time_limit, max_output, read_chunk_size, stop_program
    )


def spawn_jail(
    args: list[str], log_write: int, pass_fds: tuple[int, ...] = ()
) -> subprocess.Popen[bytes]:
    """Start NsJail with its output on a pipe and its log on ``log_write``, then close that.

    ``pass_fds`` are further descriptors NsJail inherits (a pre-started jail's hand-over
    channel). Raises ``EvalError`` when NsJail cannot be started.
    """
    if log.isEnabledFor(logging.DEBUG):
        log.debug("NsJail arguments: %r", [_abridged(arg) for arg in args])
    try:
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(log_write, *pass_fds),
            start_new_session=True,
        )
    except ValueError as e:  # e.g. an embedded NUL byte in an argument
        raise EvalError(f"ValueError: {e}") from e
    except OSError as e:  # e.g. E2BIG: arguments too long for the kernel
        raise EvalError(f"{type(e).__name__}: {e.strerror or e}") from e
    finally:
        # Only NsJail may hold the write end, or the log would never reach end of file.
        os.close(log_write)


SHOWN_ARGUMENT = 300
"""Characters of one argument the debug log shows (code and the pool's launcher are long)."""


def _abridged(arg: str) -> str:
    if len(arg) <= SHOWN_ARGUMENT:
        return arg
    return f"{arg[:SHOWN_ARGUMENT]}... ({len(arg)} characters)"


def await_jail(
    process: subprocess.Popen[bytes],
    log_read: int,
    started: float,
    time_limit: int,
    max_output: int,
    read_chunk_size: int,
    stop_program: Callable[[], None],
) -> JailOutcome:
    """Read a started jail's output and log to the end, stop it at the limit, reap it.

    The time limit and the duration count from ``started`` (monotonic): when NsJail was
    spawned for a cold run, when the program was handed over for a pre-started one.
    """
    deadline = started + time_limit if time_limit > 0 else None
    try:
        output = _read_until_eof(
            process, log_read, deadline, max_output, read_chunk_size, stop_program
        )
    finally:
        cpu_time = _reap(process)
    returncode = process.returncode
    if output.nsjail_killed:
        log.warning("NsJail outlived the time limit by %.0f s and was killed.", WATCHDOG_GRACE)
        returncode = 128 + signal.SIGKILL
    if output.truncated:
        returncode = OUTPUT_LIMIT_RETURNCODE
    return JailOutcome(
        returncode=returncode,
        stdout=output.text,
        truncated=output.truncated,
        timed_out=output.timed_out,
        log_lines=output.log.decode("utf-8", "replace").splitlines(),
        duration=time.monotonic() - started,
        cpu_time=cpu_time,
    )


def _read_until_eof(
    process: subprocess.Popen[bytes],
    log_read: int,
    deadline: float | None,
    max_output: int,
    read_chunk_size: int,
    stop_program: Callable[[], None],
) -> _Read:
    """Read the program's output until EOF, and NsJail's log alongside it.

    Reading stops at end of file, not when NsJail exits, so nothing the program wrote is
    lost; NsJail kills the whole PID namespace when the program ends, which closes every
    write end. The output cap counts characters; past it NsJail gets SIGTERM. At the
    ``deadline`` (monotonic) ``stop_program`` kills the jail's processes, so NsJail
    reports the program killed (137); NsJail itself is killed only if it is still there
    ``WATCHDOG_GRACE`` seconds later.
    """
    assert process.stdout is not None
    stdout_fd = process.stdout.fileno()
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    kept = CappedText(max_output)
    truncated = timed_out = False
    watchdog = None if deadline is None else deadline + WATCHDOG_GRACE
    log_chunks: list[bytes] = []
    with selectors.DefaultSelector() as selector:
        selector.register(stdout_fd, selectors.EVENT_READ)
        selector.register(log_read, selectors.EVENT_READ)
        while selector.get_map():
            now = time.monotonic()
            if deadline is not None and not timed_out and now >= deadline:
                # NsJail's own wording, which the original's users match in the log.
                log.info("pid=%d run time >= time limit; killing it", process.pid)
                timed_out = True
                stop_program()
            if watchdog is not None and now >= watchdog:
                process.kill()
                log_chunks.append(read_available(log_read))
                return _Read(kept.text(), truncated, True, b"".join(log_chunks), True)
            wake = watchdog if timed_out else deadline
            timeout = None if wake is None else max(0.0, wake - now)
            for key, _ in selector.select(timeout):
                data = os.read(key.fd, read_chunk_size)
                if not data:
                    selector.unregister(key.fd)
                elif key.fd == log_read:
                    log_chunks.append(data)
                else:
                    try:
                        text = decoder.decode(data)
                    except UnicodeDecodeError as e:
                        process.terminate()
                        log_chunks.append(read_available(log_read))
                        raise EvalError(INVALID_OUTPUT) from e
                    if kept.add(text):
                        log.info("Output exceeded %d characters; stopping the run.", max_output)
                        truncated = True
                        process.terminate()
                        selector.unregister(stdout_fd)
        if not truncated:
            try:
                kept.add(decoder.decode(b"", final=True))
            except UnicodeDecodeError as e:
                raise EvalError(INVALID_OUTPUT) from e
    return _Read(kept.text(), truncated, timed_out, b"".join(log_chunks), False)


class CappedText:
    """Text read in pieces, of which only the first ``limit`` characters are kept."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pieces: list[str] = []
        self.length = 0

    def add(self, piece: str) -> bool:
        """Keep ``piece``; True once more than ``limit`` characters have arrived."""
        self.pieces.append(piece)
        self.length += len(piece)
        return self.length > self.limit

    def text(self) -> str:
        """The kept text: everything that arrived, cut at ``limit`` characters."""
        text = "".join(self.pieces)
        return text[: self.limit] if self.length > self.limit else text


def read_available(fd: int) -> bytes:
    """What is already in a pipe, read without blocking (best effort, for NsJail's log)."""
    chunks = []
    os.set_blocking(fd, False)
    try:
        while data := os.read(fd, 65536):
            chunks.append(data)
    except BlockingIOError:
        pass
    return b"".join(chunks)


def _reap(process: subprocess.Popen[bytes]) -> float | None:
    """Wait for NsJail, killing it if it ignores SIGTERM; return the CPU seconds it used.

    ``os.wait4`` reports the resources of NsJail and of every descendant it waited for, which
    covers the sandboxed processes (NsJail's own share is a few milliseconds).
    """
    try:
        if not _exited_within(process.pid, TERMINATE_GRACE):
            process.kill()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        return usage.ru_utime + usage.ru_stime
    except ChildProcessError:
        process.wait()
        return None
    finally:
        if process.stdout is not None:
            process.stdout.close()


def _exited_within(pid: int, timeout: float) -> bool:
    """Whether process ``pid`` exits within ``timeout`` seconds, woken the moment it does.

    NsJail closes the pipes a moment before it exits, so the reaper usually waits a little;
    a pidfd wakes it at the exit itself rather than at the next tick of a polling loop.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([pidfd], [], [], timeout)[0])
    finally:
        os.close(pidfd)


def stop_jail(process: subprocess.Popen[bytes]) -> None:
    """Kill a jail that will not be read (a pre-started one discarded unused) and reap it."""
    if process.poll() is None:
        process.kill()
    _reap(process)
