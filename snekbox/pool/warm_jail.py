"""One pre-started jail: a complete sandbox whose interpreter waits for its program.

It is started exactly as a cold run's jail (its own memfs, run cgroup, every namespace, the
engine's NsJail config and limits), except that the interpreter runs the launcher
(`snekbox.pool.launcher`) with one more descriptor, its end of the hand-over channel. The
jail is used once: after `hand_over` it is read, reaped and released like any run, and a jail
that is never used is `discard`-ed the same way.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from snekbox.jail_process import read_available, spawn_jail, stop_jail
from snekbox.limits.cgroup import CgroupSetup
from snekbox.limits.run_cgroup import RunLimits
from snekbox.pool.forms import encode_arguments
from snekbox.sandbox import MemfsLayout, Sandbox
from snekbox.snekio import MemFS

__all__ = ("JailRecipe", "WarmJail", "launcher_source")

log = logging.getLogger(__name__)

READY = b"R"
RECEIVED = b"A"
HAND_OVER_TIMEOUT = 5.0
"""Seconds sending the program may take (the waiting interpreter reads it at once)."""


@cache
def launcher_source() -> str:
    """The launcher's source, passed to the interpreter with ``-c``."""
    return (Path(__file__).parent / "launcher.py").read_text()


@dataclass(frozen=True, slots=True)
class JailRecipe:
    """What the engine that owns a pool gives it to make jails exactly as its cold runs are.

    The pool never imports the engine: it receives these, so the engine stays the only
    author of a jail's layout and NsJail arguments.
    """

    layout: Callable[[], MemfsLayout]
    cgroups: CgroupSetup
    build_args: Callable[
        [MemFS, int, Sequence[str], int, Sequence[str], str, Sequence[str]], list[str]
    ]
    """``(memfs, log_fd, cgroup_args, time_limit, nsjail_args, executable, py_args)``."""
    read_chunk_size: int
    relay_log: Callable[[Iterable[str]], None]
    """Re-logs NsJail's log lines as the engine does for cold runs."""


@dataclass(slots=True)
class WarmJail:
    """A running jail, its channel, and when it was started."""

    executable: str
    limits: RunLimits
    sandbox: Sandbox
    process: subprocess.Popen[bytes]
    channel: socket.socket
    nsjail_prefix: list[str]
    """NsJail's argv up to and including ``--``: what a failed run reports as run."""
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def start(
        cls, recipe: JailRecipe, executable: str, limits: RunLimits, nsjail_time_limit: int
    ) -> WarmJail:
        """Start a jail for ``executable`` with ``limits``; raises ``OSError``/``EvalError``.

        ``nsjail_time_limit`` is NsJail's own limit, which covers the jail's idle life and
        its run; the run's limit is enforced from the hand-over by the engine's clock.
        """
        sandbox = Sandbox.open(recipe.layout(), recipe.cgroups, limits)
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        except OSError:
            sandbox.close()
            raise
        try:
            fd = theirs.fileno()
            args = recipe.build_args(
                sandbox.memfs,
                sandbox.log_write,
                sandbox.cgroup_args,
                nsjail_time_limit,
                ["--pass_fd", str(fd)],
                executable,
                ["-c", launcher_source(), str(fd)],
            )
            process = spawn_jail(args, sandbox.log_write, pass_fds=(fd,))
        except BaseException:
            ours.close()
            sandbox.close()
            raise
        finally:
            theirs.close()
        prefix = args[: args.index("--") + 1]
        return cls(executable, limits, sandbox, process, ours, prefix)

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the interpreter is up and blocked on its channel."""
        return self._receive(READY, timeout)

    def log_so_far(self) -> str:
        """What NsJail has logged until now (why a jail did not come up), without blocking."""
        return read_available(self.sandbox.log_read).decode("utf-8", "replace").strip()

    @property
    def age(self) -> float:
        """Seconds since the jail was started."""
        return time.monotonic() - self.started

    def alive(self) -> bool:
        """Whether NsJail (and so the waiting interpreter) is still there."""
        return self.process.poll() is None

    def usable(self, idle_age: float) -> bool:
        """Whether a run may still take it: alive, and younger than ``idle_age`` seconds."""
        return self.alive() and self.age < idle_age

    def hand_over(self, py_args: list[str]) -> float | None:
        """Send the program; the monotonic time it was sent, or None if the jail is gone.

        The receipt is not awaited here, so the run is not held up by a round trip: the
        launcher writes it before the program starts, and `received` reads it afterwards.
        """
        message = encode_arguments(py_args)
        assert message, "the caller checks the form first (snekbox.pool.forms)"
        sent = time.monotonic()
        try:
            self.channel.settimeout(HAND_OVER_TIMEOUT)
            self.channel.sendall(b"%08d" % len(message) + message)
        except OSError:
            return None
        return sent

    def received(self) -> bool:
        """Whether the launcher confirmed the program, read once the jail has ended.

        Only a confirmed receipt counts: a jail that died before it took the program (its
        output is then empty) gives none, and its run is run again, cold.
        """
        return self._receive(RECEIVED, 0.0)

    def _receive(self, expected: bytes, timeout: float) -> bool:
        try:
            self.channel.settimeout(timeout)  # 0: only what has arrived already
            return self.channel.recv(1) == expected
        except OSError:  # including the timeout
            return False

    def close_channel(self) -> None:
        """Close the server's end of the channel (the interpreter closed its own already)."""
        self.channel.close()

    def discard(self) -> None:
        """End a jail that will not run a program and release everything it holds."""
        self.channel.close()
        try:
            try:
                self.sandbox.cgroup.kill()
            finally:
                stop_jail(self.process)
        finally:
            self.sandbox.close()
