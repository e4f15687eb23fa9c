"""Deadlines for host-side work that must not outlive a request, such as file collection.

``time_limit`` interrupts its block in the main thread with a real timer signal, so even a
long built-in computation stops (CPython runs signal handlers between bytecodes and checks for
them inside big-integer arithmetic). Signals can only be handled by the main thread, and
Gunicorn's threaded workers run requests in other threads: there the deadline is cooperative,
enforced by the ``check()`` calls the block makes between steps. Every step snekbox runs under
it is non-blocking I/O on a tmpfs, so checking between steps bounds it too.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ("Deadline", "time_limit")

DEFAULT_MESSAGE = "Exceeded time limit"


class Deadline:
    """A point in monotonic time after which ``check`` raises ``TimeoutError``."""

    def __init__(self, seconds: float, message: str = DEFAULT_MESSAGE) -> None:
        self.expires_at = time.monotonic() + seconds
        self.message = message

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return time.monotonic() >= self.expires_at

    def check(self) -> None:
        """Raise ``TimeoutError`` with this deadline's message once it has passed."""
        if self.expired:
            raise TimeoutError(self.message)


@contextmanager
def time_limit(seconds: float, message: str = DEFAULT_MESSAGE) -> Iterator[Deadline]:
    """Stop the block with ``TimeoutError`` once ``seconds`` have passed.

    In the main thread a ``SIGALRM`` timer interrupts the block wherever it is; in any other
    thread the block must call ``Deadline.check()``, and the deadline is checked once more on
    exit so a block that overran without checking still reports it.
    """
    deadline = Deadline(seconds, message)
    if threading.current_thread() is not threading.main_thread():
        yield deadline
        deadline.check()
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(message)

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-6))
    try:
        yield deadline
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    deadline.check()
