"""Deadlines for host-side work that must not outlive a request, such as file collection.

The deadline is cooperative: code calls ``check()`` between steps. A signal-based alarm would
only work in the main thread, and Gunicorn's threaded workers run requests in other threads;
every step checked here is non-blocking I/O on a tmpfs, so checking between steps bounds it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ("Deadline", "time_limit")


class Deadline:
    """A point in monotonic time after which ``check`` raises ``TimeoutError``."""

    def __init__(self, seconds: float, message: str = "Exceeded time limit") -> None:
        self.expires_at = time.monotonic() + seconds
        self.message = message

    @property
    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.expires_at - time.monotonic())

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return time.monotonic() >= self.expires_at

    def check(self) -> None:
        """Raise ``TimeoutError`` with this deadline's message once it has passed."""
        if self.expired:
            raise TimeoutError(self.message)


@contextmanager
def time_limit(seconds: float, message: str = "Exceeded time limit") -> Iterator[Deadline]:
    """Give the block a ``Deadline``; the block fails with ``TimeoutError`` when it passes.

    Besides the checks the block makes itself, the deadline is checked once more on exit so
    a block that overran without checking still reports it.
    """
    deadline = Deadline(seconds, message)
    yield deadline
    deadline.check()
