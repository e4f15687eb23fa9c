"""Bookkeeping for connections whose request head (request line and headers) is still arriving.

Pure data, no sockets: the worker feeds it bytes and the clock, and it says which connections
have a complete head, which ran out of time, and which to drop when one client (or all of
them) holds too many unfinished heads. Dropping the *oldest* head keeps the newest
connections, those of clients that are still talking, served.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["PendingHead", "PendingHeads", "head_length"]

Conn = TypeVar("Conn")

# A blank line ends the head; bare LF line ends are found too, so Gunicorn's parser, not a
# timeout, answers a client that uses them.
_HEAD_END = re.compile(rb"\r?\n\r?\n")
# Empty lines before the request line are to be ignored (RFC 9112 section 2.2).
_LEADING_EMPTY_LINES = re.compile(rb"[\r\n]*")


def head_length(data: bytes | bytearray) -> int | None:
    """The length of the complete head at the start of `data`, or None while it is partial."""
    match = _HEAD_END.search(data)
    return match.end() if match else None


@dataclass(eq=False)
class PendingHead(Generic[Conn]):
    """One connection's head so far and when it must be complete."""

    conn: Conn
    client: str
    deadline: float
    data: bytearray = field(default_factory=bytearray)

    def feed(self, chunk: bytes) -> bool:
        """Add received bytes; True once the head is complete (the data may hold more)."""
        searched = max(0, len(self.data) - 3)  # a blank line may straddle two chunks
        self.data += chunk
        if searched == 0:
            empty = _LEADING_EMPTY_LINES.match(self.data)
            if empty is not None and empty.end():
                del self.data[: empty.end()]
        return _HEAD_END.search(self.data, searched) is not None


class PendingHeads(Generic[Conn]):
    """Pending heads in deadline order, at most `max_total` of them and `max_per_client` each.

    Every head gets the same timeout and the clock only moves forward, so the order in which
    heads are added is also the order of their deadlines.
    """

    def __init__(self, max_total: int, max_per_client: int) -> None:
        if max_total < 1 or max_per_client < 1:
            raise ValueError("the pending-head caps must be at least 1")
        self.max_total = max_total
        self.max_per_client = max_per_client
        self._heads: dict[int, PendingHead[Conn]] = {}  # by id(conn), oldest first
        self._by_client: dict[str, deque[PendingHead[Conn]]] = {}

    def __len__(self) -> int:
        return len(self._heads)

    def get(self, conn: Conn) -> PendingHead[Conn] | None:
        return self._heads.get(id(conn))

    def add(
        self, conn: Conn, client: str, deadline: float, data: bytes = b""
    ) -> tuple[PendingHead[Conn], list[PendingHead[Conn]]]:
        """Start waiting for `conn`'s head; return it and the heads dropped to make room."""
        dropped = []
        same_client = self._by_client.get(client)
        if same_client is not None and len(same_client) >= self.max_per_client:
            dropped.append(self._remove(same_client[0]))
        if len(self._heads) >= self.max_total:
            dropped.append(self._remove(next(iter(self._heads.values()))))
        head = PendingHead(conn, client, deadline, bytearray())
        head.feed(data)
        self._heads[id(conn)] = head
        self._by_client.setdefault(client, deque()).append(head)
        return head, dropped

    def remove(self, conn: Conn) -> PendingHead[Conn] | None:
        """Stop tracking `conn` (its head is complete, or it went away)."""
        head = self._heads.get(id(conn))
        return self._remove(head) if head is not None else None

    def _remove(self, head: PendingHead[Conn]) -> PendingHead[Conn]:
        del self._heads[id(head.conn)]
        same_client = self._by_client[head.client]
        same_client.remove(head)
        if not same_client:
            del self._by_client[head.client]
        return head

    def next_deadline(self) -> float | None:
        """When the oldest pending head runs out of time, if there is one."""
        for head in self._heads.values():
            return head.deadline
        return None

    def pop_expired(self, now: float) -> list[PendingHead[Conn]]:
        """Remove and return every head whose deadline has passed."""
        expired = []
        for head in list(self._heads.values()):
            if head.deadline > now:
                break
            expired.append(self._remove(head))
        return expired

    def cap_deadlines(self, deadline: float) -> None:
        """Make every head due by `deadline` at the latest (a stopping worker); keeps the order."""
        for head in self._heads.values():
            head.deadline = min(head.deadline, deadline)
