"""Run one Python program under NsJail: build the arguments, spawn, read, reap, collect.

This module knows processes and nothing of HTTP. One ``NsJail`` instance is shared by all of a
server process's threads; ``python3`` keeps all per-run state local, so runs are independent.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path

from snekbox import leftovers
from snekbox.jail_config import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_EXECUTABLE_PATH,
    DEFAULT_MAX_OUTPUT_SIZE,
    DEFAULT_MEMFS_INSTANCE_SIZE,
    NsJailNotFoundError,
    locate_nsjail,
    read_config,
)
from snekbox.jail_process import CappedText, JailOutcome, run_jail
from snekbox.limits import cgroup, swap
from snekbox.limits.run_cgroup import CgroupStats, RunLimits
from snekbox.limits.table import EvalLimits, config_defaults, merge, parse_nsjail_options
from snekbox.pool import JailPool, JailRecipe, PoolSettings
from snekbox.result import EvalError, EvalResult, decide_status
from snekbox.sandbox import MemfsLayout, Sandbox
from snekbox.snekio import Collection, FileAttachment, MemFS
from snekbox.snekio.memfs import memfs_root as configured_memfs_root
from snekbox.utils.logging import debug_enabled

__all__ = (
    "DEFAULT_EXECUTABLE_PATH",
    "EvalLimits",
    "NsJail",
    "NsJailNotFoundError",
    "decide_status",
    "read_config",
)

log = logging.getLogger(__name__)

DEBUG = debug_enabled()
"""Whether ``SNEKBOX_DEBUG`` asked for debug logging; NsJail's info chatter is logged only then."""

NSJAIL_TIME_BACKSTOP = 2
"""Seconds NsJail's own time limit adds to the run's: it counts whole seconds of wall-clock
time and may fire up to a second early, so snekbox enforces the limit itself with a monotonic
clock and NsJail's limit only catches a run snekbox failed to stop."""


# "[W][2019-06-22T20:07:00+0000][16] void foo::bar()():100 message": the level letter, the
# time, the pid (absent in some lines) and the function with its line (absent in some builds).
_LOG_LINE = re.compile(
    r"^\[(?P<level>[DIWEF])\]\[[^\]]*\](?:\[\d+\])?\s(?P<function>.*?\(\):\d+\s)?(?P<message>.*)$"
)
_LOG_LEVELS = {
    "D": logging.DEBUG,
    "I": logging.INFO,
    "W": logging.WARNING,
    "E": logging.ERROR,
    "F": logging.ERROR,
}


class NsJail:
    """Runs Python programs in NsJail with the limits of ``config_path``.

    Construction checks the NsJail binary, parses the config and prepares the parent cgroups,
    so a misconfigured host fails at start-up rather than on the first request.
    """

    def __init__(
        self,
        nsjail_path: str | None = None,
        config_path: str = DEFAULT_CONFIG_PATH,
        max_output_size: int = DEFAULT_MAX_OUTPUT_SIZE,
        read_chunk_size: int = 10_000,
        memfs_instance_size: int = DEFAULT_MEMFS_INSTANCE_SIZE,
        memfs_home: str = "home",
        memfs_output: str = "home",
        files_limit: int = 100,
        files_timeout: float = 5,
        files_pattern: str = "**/[!_]*",
        memfs_root: str | Path | None = None,
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
        self.memfs_root = Path(memfs_root) if memfs_root is not None else configured_memfs_root()
        if not self.memfs_root.is_dir():
            raise FileNotFoundError(
                f"The memfs root {self.memfs_root} does not exist; run the provisioning step "
                "(make setup) or set SNEKBOX_MEMFS_ROOT"
            )

        self.config = read_config(config_path)
        self.cgroups = cgroup.init(self.config)
        swap.warn_if_unenforceable(self.config, self.cgroups)
        cgroup.remove_leftovers(self.cgroups)
        leftovers.sweep_dead_owners()
        self.pool: JailPool | None = None
        """Pre-started jails runs may take (`start_pool`); None: every run starts cold."""

    def memfs_layout(self) -> MemfsLayout:
        """How this engine's runs lay out and collect their memfs (from its attributes now)."""
        return MemfsLayout(
            self.memfs_root,
            self.memfs_instance_size,
            self.memfs_home,
            self.memfs_output,
            self.files_limit,
            self.files_pattern,
            self.files_timeout,
        )

    def start_pool(
        self, settings: PoolSettings, observer: Callable[[str, str], None] | None = None
    ) -> JailPool:
        """Keep jails pre-started as ``settings`` says, and let eligible runs take them.

        ``observer`` is called with each of `snekbox.pool.EVENTS` and the executable path.
        A pool started before is closed and replaced.
        """
        old, self.pool = self.pool, None
        if old is not None:
            old.close()
        _, default_limits, _ = self._run_limits(EvalLimits(), (), self.max_output_size)
        recipe = JailRecipe(
            self.memfs_layout, self.cgroups, self._build_args, self.read_chunk_size, self._parse_log
        )
        pool = JailPool(recipe, settings, default_limits, observer)
        pool.start()
        self.pool = pool
        return pool

    # -- arguments ---------------------------------------------------------------------------

    def _build_args(
        self,
        memfs: MemFS,
        log_fd: int,
        cgroup_args: Sequence[str],
        time_limit: int,
        nsjail_args: Sequence[str],
        executable_path: str,
        py_args: Sequence[str],
    ) -> list[str]:
        # --log_fd comes first so that even errors about the config go to the log, never
        # into the program's output.
        args = [
            self.nsjail_path,
            "--log_fd",
            str(log_fd),
            "--config",
            self.config_path,
            *cgroup_args,
            "--time_limit",
            str(time_limit + NSJAIL_TIME_BACKSTOP if time_limit > 0 else 0),
            "--bindmount",
            f"{memfs.home}:/home",
        ]
        if self.config.HasField("exec_bin"):
            # A config's exec_bin would win over the argv after "--"; one element, so the
            # executable still appears once, as the command.
            args.append(f"--exec_file={executable_path}")
        return [*args, *nsjail_args, "--", executable_path, *py_args]

    def _run_limits(
        self, limits: EvalLimits, nsjail_args: Sequence[str], max_output: int
    ) -> tuple[EvalLimits, RunLimits, list[str]]:
        """The run's limits, its cgroup's limits, and ``nsjail_args`` without limit options.

        Precedence: ``limits`` (per request), then ``nsjail_args`` (the CLI's overrides), then
        the config. The cgroup limits are applied to snekbox's own run cgroup and the time
        limit by snekbox's own clock, so NsJail's options for them are consumed here.
        """
        options, swap, rest = parse_nsjail_options(list(nsjail_args))
        resolved = merge(config_defaults(self.config, max_output), options, limits)
        swap_max = self.config.cgroup_mem_swap_max if swap is None else swap
        assert resolved.memory is not None and resolved.pids is not None
        return resolved, RunLimits(resolved.memory, swap_max, resolved.pids), rest

    # -- running -----------------------------------------------------------------------------

    def python3(
        self,
        py_args: Sequence[str],
        files: Iterable[FileAttachment] = (),
        nsjail_args: Sequence[str] = (),
        executable_path: str = DEFAULT_EXECUTABLE_PATH,
        *,
        limits: EvalLimits | None = None,
        use_pool: bool = True,
    ) -> EvalResult:
        """Run ``executable_path`` with ``py_args`` in a fresh jail and collect what it made.

        With a pool (`start_pool`), a run it can serve takes a pre-started jail unless
        ``use_pool`` is False; the answer is the same either way. Never raises for anything
        the program does; a run that could not happen or whose
        output could not be read is an ``EvalResult`` with ``returncode`` ``None`` and the
        reason as ``stdout``.
        """
        limits = limits or EvalLimits()
        py_args = list(_drop_leading_empty(py_args))
        args: list[str] = [executable_path, *py_args]
        resolved, run_limits, nsjail_args = self._run_limits(
            limits, nsjail_args, self.max_output_size
        )
        time_limit, max_output = resolved.time or 0, resolved.output_size or self.max_output_size
        started = time.monotonic()
        try:
            output, stats, collection = self._run_in_sandbox(
                args, files, run_limits, time_limit, max_output, nsjail_args, use_pool
            )
        except EvalError as e:
            log.info("Run failed: %s", e)
            return EvalResult.failed(args, str(e), duration=time.monotonic() - started)
        except OSError:
            # The host could not prepare the memfs or the cgroups: a server problem, not the
            # program's, but the client still gets an answer it can show.
            log.exception("Could not prepare the sandbox for a run.")
            return EvalResult.failed(
                args,
                "OSError: could not prepare the sandbox",
                duration=time.monotonic() - started,
            )
        result = EvalResult(
            args,
            output.returncode,
            output.stdout,
            files=collection.files,
            status=decide_status(
                output.returncode, output.truncated, output.log_lines, stats, output.timed_out
            ),
            duration=output.duration,
            cpu_time=output.cpu_time,
            memory_peak=stats.memory_peak,
            stdout_truncated=output.truncated,
            files_skipped=collection.skipped,
            files_skipped_more=collection.skipped_more,
        )
        log.info(
            "Run finished: return code %s, status %s, %.3f s, %d file(s).",
            result.returncode,
            result.status,
            result.duration,
            len(result.files),
        )
        return result

    def _run_in_sandbox(
        self,
        args: list[str],
        files: Iterable[FileAttachment],
        run_limits: RunLimits,
        time_limit: int,
        max_output: int,
        nsjail_args: Sequence[str],
        use_pool: bool = True,
    ) -> tuple[JailOutcome, CgroupStats, Collection]:
        """Run in a pre-started jail when the pool can serve the run, else in a fresh one.

        ``args`` comes in as the program's ``[executable, *py_args]`` and is replaced in place
        by NsJail's whole argv once that is known, so a failure reports what was run.
        """
        files = list(files)
        pool = self.pool
        with pool.running() if pool is not None else nullcontext():
            if (
                pool is not None
                and use_pool
                and pool.can_serve(args[0], args[1:], files, run_limits, time_limit, nsjail_args)
            ):
                served = pool.run(args, files, run_limits, time_limit, max_output)
                if served is not None:
                    return served
            return self._run_cold(args, files, run_limits, time_limit, max_output, nsjail_args)

    def _run_cold(
        self,
        args: list[str],
        files: list[FileAttachment],
        run_limits: RunLimits,
        time_limit: int,
        max_output: int,
        nsjail_args: Sequence[str],
    ) -> tuple[JailOutcome, CgroupStats, Collection]:
        """Hold a fresh sandbox (see `snekbox.sandbox`), run NsJail in it, release it.

        The cgroup's counters are read before it goes, and the files are collected after the
        jail is gone but before the memfs is unmounted.
        """
        executable_path, *py_args = args
        with Sandbox.open(self.memfs_layout(), self.cgroups, run_limits) as sandbox:
            sandbox.write_inputs(files)
            args[:] = self._build_args(
                sandbox.memfs,
                sandbox.log_write,
                sandbox.cgroup_args,
                time_limit,
                nsjail_args,
                executable_path,
                py_args,
            )
            outcome = run_jail(
                args,
                sandbox.log_read,
                sandbox.log_write,
                time_limit,
                max_output,
                self.read_chunk_size,
                sandbox.cgroup.kill,
            )
            self._parse_log(outcome.log_lines)
            stats, collection = sandbox.finish()
        return outcome, stats, collection

    def _parse_log(self, lines: Iterable[str]) -> None:
        """Re-log NsJail's log lines on this module's logger at the level NsJail gave them.

        Info lines are jail set-up chatter (mounts, maps, parameters) except those about the
        program's process (``pid=...``: how it ended), so the rest is logged only in debug mode.
        """
        for line in lines:
            if not line.strip():
                continue
            match = _LOG_LINE.match(line)
            if match is None:
                log.warning("Failed to parse log line '%s'", line)
                continue
            message = match["message"]
            if match["level"] == "I" and not DEBUG and not message.startswith("pid="):
                continue
            if DEBUG and match["function"]:
                message = match["function"] + message  # where in NsJail, for debugging
            log.log(_LOG_LEVELS[match["level"]], message)

    def _consume_stdout(self, nsjail: subprocess.Popen[str]) -> str:
        """Read the text stream ``nsjail.stdout`` to its end, keeping ``max_output_size`` chars.

        Past the cap NsJail is terminated and the rest is never read.
        """
        assert nsjail.stdout is not None
        kept = CappedText(self.max_output_size)
        while chunk := nsjail.stdout.read(self.read_chunk_size):
            if kept.add(chunk):
                nsjail.terminate()
                break
        return kept.text()


def _drop_leading_empty(args: Iterable[str]) -> Iterator[str]:
    """Skip empty strings before the first real argument; later ones are data."""
    started = False
    for arg in args:
        started = started or arg != ""
        if started:
            yield arg
