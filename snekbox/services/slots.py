"""A server-wide cap on how many sandboxes run at once.

Gunicorn runs several worker processes, each with many threads, and the kernel hands new
connections to whichever worker accepts first; a per-process semaphore would let one worker run
its whole share while the other idles. The slots are therefore lock files shared by every worker
of one server: holding an exclusive `flock` on slot *i* means running sandbox *i*. The kernel
drops the lock when its holder dies, so a crashed worker cannot leak a slot.

Within one process, `flock` on the same open file does not exclude a second thread, so a
condition variable hands out each of the process's descriptors to one thread at a time.

A run that may pin more memory than a default one (its request raised the memory limit) takes
several slots at once, so the slot count keeps bounding the memory all runs can pin together.

A request's wait for a slot is part of its queue time, which starts when its head arrived:
snekbox's Gunicorn worker (snekbox.serving) stamps that moment into the WSGI environ, so the
time a request already spent waiting for a thread is taken off its slot wait.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["ARRIVED_ENVIRON_KEY", "NoSlotAvailableError", "RunSlots", "time_since_arrival"]

log = logging.getLogger(__name__)

# How often a waiting thread re-checks slots that another worker process may have freed.
# Threads of this process are woken at once instead.
CROSS_PROCESS_POLL = 0.01

# The WSGI environ key for when the server had the request's head, in `time.monotonic()` seconds.
ARRIVED_ENVIRON_KEY = "snekbox.arrived"


def time_since_arrival(environ: Mapping[str, Any]) -> float:
    """Seconds the request has waited since its head arrived; 0 when the server did not say.

    Other servers (Gunicorn's own workers, falcon.testing) set no stamp: their requests reach
    the app as soon as they have a thread, so "now" is when they arrived.
    """
    arrived = environ.get(ARRIVED_ENVIRON_KEY)
    if not isinstance(arrived, float):
        return 0.0
    return max(0.0, time.monotonic() - arrived)


class NoSlotAvailableError(Exception):
    """Every slot stayed busy for the whole wait the caller allowed."""

    def __init__(self, waited: float) -> None:
        super().__init__(f"no sandbox slot became free within {waited:.1f} s")
        self.waited = waited


class RunSlots:
    """Hand out at most `count` run slots at a time, across processes when `lock_dir` is set.

    Without `lock_dir` the cap only holds within this process (enough for tests and for a
    single-process server).
    """

    def __init__(self, count: int, lock_dir: str | os.PathLike[str] | None = None) -> None:
        if count < 1:
            raise ValueError(f"a server needs at least one run slot, not {count}")
        self.count = count
        self.lock_dir = Path(lock_dir) if lock_dir is not None else None
        self._cond = threading.Condition()
        self._free = list(range(count))  # slot numbers no thread of this process holds
        self._fds: list[int] = []
        self._fds_pid = 0  # descriptors opened before a fork would share their locks

    @property
    def held(self) -> int:
        """Slots held by this process's threads right now."""
        return self.count - len(self._free)

    def _descriptors(self) -> list[int]:
        """Open this process's own descriptor for every slot file (once per process)."""
        if self._fds_pid != os.getpid():
            assert self.lock_dir is not None
            self.lock_dir.mkdir(parents=True, exist_ok=True)
            self._fds = [
                os.open(self.lock_dir / f"slot-{i}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                for i in range(self.count)
            ]
            self._fds_pid = os.getpid()
        return self._fds

    def _try_take(self, weight: int) -> list[int] | None:
        """Take `weight` slots free here and in every other process, or none; hold _cond.

        All or nothing: a partial grab is given back at once, so two heavy runs can never
        each hold half of what both need and wait on each other.
        """
        if len(self._free) < weight:
            return None
        if self.lock_dir is None:
            taken = self._free[-weight:]
            del self._free[-weight:]
            return taken
        fds = self._descriptors()
        taken = []
        for slot in self._free:
            try:
                fcntl.flock(fds[slot], fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            taken.append(slot)
            if len(taken) == weight:
                break
        if len(taken) < weight:
            for slot in taken:
                fcntl.flock(fds[slot], fcntl.LOCK_UN)
            return None
        self._free = [slot for slot in self._free if slot not in taken]
        return taken

    def acquire_many(self, weight: int = 1, timeout: float | None = None) -> list[int]:
        """Wait for `weight` slots at once (at most `timeout` seconds) and return their numbers.

        A weight above the slot count is capped at the count: such a run takes the whole
        server rather than never running.
        """
        weight = max(1, min(weight, self.count))
        start = time.monotonic()
        with self._cond:
            while (taken := self._try_take(weight)) is None:
                remaining = None if timeout is None else timeout - (time.monotonic() - start)
                if remaining is not None and remaining <= 0:
                    raise NoSlotAvailableError(time.monotonic() - start)
                # Another process frees its slots silently: poll for those.
                wait = remaining
                if self.lock_dir is not None:
                    wait = CROSS_PROCESS_POLL if wait is None else min(wait, CROSS_PROCESS_POLL)
                self._cond.wait(wait)
        waited = time.monotonic() - start
        if waited > 0.001:
            log.debug("Waited %.3f s for run slot(s) %s", waited, taken)
        return taken

    def release_many(self, slots: list[int]) -> None:
        """Give slots back and wake this process's waiting threads."""
        with self._cond:
            for slot in slots:
                if self.lock_dir is not None:
                    fcntl.flock(self._fds[slot], fcntl.LOCK_UN)
                self._free.append(slot)
            # Every waiter: a freed slot may complete a heavy run's set or serve a light one.
            self._cond.notify_all()

    @contextmanager
    def slot(self, timeout: float | None = None, weight: int = 1) -> Iterator[list[int]]:
        """Hold `weight` slots (one by default) for the duration of the block."""
        slots = self.acquire_many(weight, timeout)
        try:
            yield slots
        finally:
            self.release_many(slots)
