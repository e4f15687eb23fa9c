"""Pre-started one-shot jails, kept ready per interpreter and refilled in the background.

A run that `can_serve` takes the oldest live jail of its interpreter, writes its files into
that jail's home, hands the program over and is read like any run; the jail is never reused.
When there is no jail, the jail died while waiting, or it does not confirm the hand-over, the
run goes cold (the caller runs it in a fresh jail): the pool can make a run faster, never
make it fail. One thread per pool starts jails until each interpreter has its `PoolSettings`
count, retires jails older than the idle age, and ends them all at `close` (also called at
interpreter exit). A forked child inherits no jails.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from snekbox.jail_process import JailOutcome, await_jail, stop_jail
from snekbox.limits.run_cgroup import CgroupStats, RunLimits
from snekbox.pool.forms import is_pooled_form
from snekbox.pool.warm_jail import JailRecipe, WarmJail
from snekbox.result import EvalError
from snekbox.sandbox import Sandbox
from snekbox.snekio import Collection, FileAttachment

__all__ = ("EVENTS", "JailPool", "PoolSettings", "live_pools")

log = logging.getLogger(__name__)

EVENTS = ("hit", "miss", "refill", "retire")
"""What a pool reports to its observer: a run took a jail, a run that could have taken one
found none (or none that worked), a jail was started, a jail was ended unused."""

READY_TIMEOUT = 10.0
"""Seconds a new jail's interpreter may take to come up before the jail is given up."""
MAX_BACKOFF = 10.0
"""Longest pause between attempts while jails keep failing to start (a broken host)."""
CLOSE_TIMEOUT = 10.0
REFILL_DELAY = 0.02
"""Seconds the refill waits after a run, so that run's answer goes out before a new jail's
start takes the CPU, the cgroup and mount locks and this process's GIL."""


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """How many jails to keep waiting, for how long, and for runs of what length."""

    sizes: Mapping[str, int]
    """Jails kept waiting per executable path (as requests name it), in this process."""
    idle_age: float = 60.0
    """Seconds after which a waiting jail is ended and replaced by a fresh one."""
    max_time: int = 30
    """The longest time limit a pooled run may have (longer ones run cold)."""

    @property
    def total(self) -> int:
        """Jails this process keeps waiting in all."""
        return sum(self.sizes.values())


@dataclass(slots=True)
class _Ready:
    jails: deque[WarmJail] = field(default_factory=deque)
    starting: int = 0


class JailPool:
    """The waiting jails of one engine in one process (see the module docstring)."""

    def __init__(
        self,
        recipe: JailRecipe,
        settings: PoolSettings,
        limits: RunLimits,
        observer: Callable[[str, str], None] | None = None,
    ) -> None:
        self.recipe = recipe
        self.settings = settings
        self.limits = limits
        """The limits every jail is started with: the config's (lower ones are set at hand-over)."""
        self.observer = observer
        self.nsjail_time_limit = int(settings.idle_age + 1) + settings.max_time
        self._ready = {executable: _Ready() for executable, size in settings.sizes.items() if size}
        self._retired: list[WarmJail] = []
        self._releasing: list[Sandbox] = []
        self._busy = 0
        """Runs of the engine in flight (cold or pooled): the refill waits until there are none."""
        self._quiet_from = 0.0
        """When the last run's answer has had `REFILL_DELAY` to leave (monotonic)."""
        self._lock = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._refill, name="snekbox-pool", daemon=True)
        _live_pools.add(self)

    def start(self) -> None:
        """Start filling the pool in the background."""
        self._thread.start()
        atexit.register(self.close)

    # -- serving runs ------------------------------------------------------------------------

    def can_serve(
        self,
        executable: str,
        py_args: Sequence[str],
        files: Sequence[FileAttachment],
        limits: RunLimits,
        time_limit: int,
        nsjail_args: Sequence[str],
    ) -> bool:
        """Whether a pooled jail runs this exactly as a cold one would (`snekbox.pool.forms`)."""
        base = self.limits
        return (
            executable in self._ready
            and not nsjail_args
            and 0 < time_limit <= self.settings.max_time
            and 0 < limits.memory <= base.memory
            and 0 < limits.pids <= base.pids
            and limits.swap == base.swap
            and is_pooled_form(py_args, files)
        )

    def run(
        self,
        args: list[str],
        files: Sequence[FileAttachment],
        limits: RunLimits,
        time_limit: int,
        max_output: int,
    ) -> tuple[JailOutcome, CgroupStats, Collection] | None:
        """Run ``args`` (``[executable, *py_args]``) in a waiting jail; None: run it cold.

        ``args`` is replaced in place by the jail's NsJail argv, as for a cold run. Raises
        ``EvalError`` for what a cold run would fail the same way (files that do not fit).
        """
        executable, *py_args = args
        jail = self._take(executable)
        started = None if jail is None else self._hand_over(jail, files, limits, py_args)
        if jail is None or started is None:
            self._report("miss", executable)
            return None
        sandbox = jail.sandbox
        try:
            try:
                outcome = await_jail(
                    jail.process,
                    sandbox.log_read,
                    started,
                    time_limit,
                    max_output,
                    self.recipe.read_chunk_size,
                    sandbox.cgroup.kill,
                )
            finally:
                stop_jail(jail.process)
            if not jail.received():
                log.warning("A waiting jail ended before it took its program; running it cold.")
                jail.discard()
                self._report("miss", executable)
                return None
            jail.close_channel()
            self._report("hit", executable)
            args[:] = [*jail.nsjail_prefix, *args]
            self.recipe.relay_log(outcome.log_lines)
            stats, collection = sandbox.finish(release_cgroup=False)
        except BaseException:
            jail.close_channel()
            sandbox.close()
            raise
        self._release_later(sandbox)
        return outcome, stats, collection

    def _hand_over(
        self,
        jail: WarmJail,
        files: Sequence[FileAttachment],
        limits: RunLimits,
        py_args: list[str],
    ) -> float | None:
        """Give ``jail`` its files, limits and program: when it was sent, or None (jail ended).

        Raises ``EvalError`` (the jail ended) for files that do not fit, as a cold run would.
        """
        try:
            jail.sandbox.write_inputs(files)
            if limits != jail.limits:
                jail.sandbox.cgroup.tighten(limits)
            started = jail.hand_over(py_args)
        except OSError:
            log.warning("Could not prepare a waiting jail's run; running it cold.")
            started = None
        except BaseException:
            jail.discard()
            raise
        if started is None:
            jail.discard()
        return started

    def _release_later(self, sandbox: Sandbox) -> None:
        """Leave a finished run's cgroup and memfs to the pool's thread to remove.

        Its processes are dead and its files collected; removing the cgroup and unmounting
        the memfs takes a millisecond more, which the answer need not wait for.
        """
        with self._lock:
            if not self._closed:
                self._releasing.append(sandbox)
                self._lock.notify_all()
                return
        sandbox.close()

    @contextmanager
    def running(self) -> Iterator[None]:
        """Count one run of the engine (pooled or cold) for as long as it is in flight."""
        with self._lock:
            self._busy += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1
                self._quiet_from = time.monotonic() + REFILL_DELAY
                self._lock.notify_all()

    def _take(self, executable: str) -> WarmJail | None:
        """The oldest jail of ``executable`` that is alive and not past its idle age."""
        with self._lock:
            ready = self._ready.get(executable)
            while ready and ready.jails:
                jail = ready.jails.popleft()
                if jail.usable(self.settings.idle_age):
                    self._lock.notify_all()
                    return jail
                self._retired.append(jail)
            self._lock.notify_all()
        return None

    def ready_count(self, executable: str | None = None) -> int:
        """Jails waiting now (for ``executable``, or in all)."""
        with self._lock:
            return sum(
                len(ready.jails)
                for name, ready in self._ready.items()
                if executable is None or name == executable
            )

    def wait_full(self, timeout: float, executable: str | None = None) -> bool:
        """Wait until every interpreter (or ``executable``) has its count of jails waiting.

        For start-up checks, benchmarks and tests that need a settled pool; False at the
        timeout or when the pool is closed.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self._closed and not self._full(executable):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
            return not self._closed

    def _full(self, executable: str | None) -> bool:
        """Whether ``executable``'s jails (or all) are at their count, none starting.

        Every finished run's sandbox must have been released as well.
        """
        return not self._releasing and all(
            len(ready.jails) >= self.settings.sizes[name] and not ready.starting
            for name, ready in self._ready.items()
            if executable is None or name == executable
        )

    def jails(self) -> list[WarmJail]:
        """The jails waiting now (for tests and leak checks: what the pool holds on purpose)."""
        with self._lock:
            return [jail for ready in self._ready.values() for jail in ready.jails]

    def _report(self, event: str, executable: str) -> None:
        if self.observer is not None:
            try:
                self.observer(event, executable)
            except Exception:
                log.exception("The pool's observer failed on %r.", event)

    # -- refilling ---------------------------------------------------------------------------

    def _refill(self) -> None:
        """Keep every interpreter's jails at their count, retire old ones, until closed."""
        failures = 0
        while True:
            with self._lock:
                if self._closed:
                    return
                releasing = list(self._releasing)  # they stay listed until released
                retired, self._retired = self._retired, []
                retired += self._expired()
                # Starting a jail while a run is in flight would take CPU, the cgroup and mount
                # locks, and this process's GIL from that run; the refill waits for a pause.
                idle = self._busy == 0 and time.monotonic() >= self._quiet_from
                wanted = self._next_wanted() if idle and not retired else None
                if wanted is None and not retired and not releasing:
                    self._lock.wait(self._next_wake(idle))
                    continue
                if wanted is not None:
                    self._ready[wanted].starting += 1
            self._release(releasing)
            for jail in retired:
                self._end(jail)
            if wanted is None:
                continue
            jail = self._start(wanted)
            with self._lock:
                self._ready[wanted].starting -= 1
                closed = self._closed
                if jail is not None and not closed:
                    self._ready[wanted].jails.append(jail)
                self._lock.notify_all()
            if closed:
                if jail is not None:  # started while the pool was closing
                    jail.discard()
                return
            failures = failures + 1 if jail is None else 0
            if failures:
                with self._lock:
                    if not self._closed:
                        self._lock.wait(min(MAX_BACKOFF, 0.1 * 2**failures))

    def _start(self, executable: str) -> WarmJail | None:
        """Start one jail and wait until it is ready; None (logged) when that fails."""
        try:
            jail = WarmJail.start(self.recipe, executable, self.limits, self.nsjail_time_limit)
        except (OSError, EvalError):
            log.exception("Could not start a waiting jail for %s.", executable)
            return None
        if not jail.wait_ready(READY_TIMEOUT):
            logged = jail.log_so_far() or "nothing"
            jail.discard()
            log.warning(
                "A waiting jail for %s did not come up; NsJail logged: %s", executable, logged
            )
            return None
        self._report("refill", executable)
        return jail

    def _release(self, sandboxes: list[Sandbox]) -> None:
        for sandbox in sandboxes:
            try:
                sandbox.close()
            except Exception:
                log.exception("Could not release a finished run's sandbox.")
        if sandboxes:
            with self._lock:
                self._releasing = [s for s in self._releasing if s not in sandboxes]
                self._lock.notify_all()  # wait_full() waits for releases too

    def _end(self, jail: WarmJail) -> None:
        try:
            jail.discard()
        except Exception:
            log.exception("Could not end a waiting jail.")
        self._report("retire", jail.executable)

    def _expired(self) -> list[WarmJail]:
        """Remove and return the jails past their idle age or no longer alive (lock held)."""
        expired = []
        for ready in self._ready.values():
            keep = deque()
            for jail in ready.jails:
                (keep if jail.usable(self.settings.idle_age) else expired).append(jail)
            ready.jails = keep
        return expired

    def _next_wanted(self) -> str | None:
        """An interpreter with fewer jails (waiting or starting) than its count (lock held)."""
        for executable, ready in self._ready.items():
            if len(ready.jails) + ready.starting < self.settings.sizes[executable]:
                return executable
        return None

    def _next_wake(self, idle: bool) -> float | None:
        """How long the refill may sleep: to the next expiry, or the end of the delay."""
        if self._busy:
            return None  # the run's end notifies
        if not idle:
            return max(0.0, self._quiet_from - time.monotonic())
        return self._until_next_expiry()

    def _until_next_expiry(self) -> float:
        ages = [jail.age for ready in self._ready.values() for jail in ready.jails]
        return max(0.05, self.settings.idle_age - max(ages)) if ages else self.settings.idle_age

    # -- ending ------------------------------------------------------------------------------

    def close(self) -> None:
        """End every waiting jail and stop refilling (idempotent; jails in use finish)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            jails = [*self.jails(), *self._retired]
            for ready in self._ready.values():
                ready.jails.clear()
            self._retired = []
            self._lock.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(CLOSE_TIMEOUT)
        with self._lock:  # what the thread had not released yet
            releasing = list(self._releasing)
        self._release(releasing)
        for jail in jails:
            self._end(jail)

    def _forget_after_fork(self) -> None:
        """In a forked child: drop the parent's jails without touching them."""
        self._closed = True
        self._lock = threading.Condition()
        for ready in self._ready.values():
            for jail in ready.jails:
                jail.channel.close()
            ready.jails.clear()
        self._retired = []
        self._releasing = []


_live_pools: weakref.WeakSet[JailPool] = weakref.WeakSet()


def live_pools() -> list[JailPool]:
    """The pools of this process not yet closed, whose jails wait on purpose (leak checks)."""
    return [pool for pool in list(_live_pools) if not pool._closed]


def _after_fork_in_child() -> None:
    for pool in list(_live_pools):
        pool._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
