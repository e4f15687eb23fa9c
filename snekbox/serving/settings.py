"""The serving limits the worker enforces before a request reaches the app, from the environment.

Every value is per worker process: Gunicorn's workers share nothing but the listening socket.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from snekbox.utils.env import positive_number

__all__ = [
    "HEAD_TIMEOUT_ENV",
    "MAX_PENDING_HEADS_ENV",
    "MAX_PENDING_HEADS_PER_CLIENT_ENV",
    "ServingSettings",
]

HEAD_TIMEOUT_ENV = "SNEKBOX_HEAD_TIMEOUT"
MAX_PENDING_HEADS_ENV = "SNEKBOX_MAX_PENDING_HEADS"
MAX_PENDING_HEADS_PER_CLIENT_ENV = "SNEKBOX_MAX_PENDING_HEADS_PER_CLIENT"

# A client on a slow mobile link sends a request head in well under a second; ten allow for
# retransmissions without letting a stalled connection linger.
DEFAULT_HEAD_TIMEOUT = 10.0
# Far more heads than honest clients ever have in flight at once, few enough that their
# buffers (at most MAX_HEAD_SIZE each) stay small.
DEFAULT_MAX_PENDING_HEADS = 256
DEFAULT_MAX_PENDING_HEADS_PER_CLIENT = 32
# Gunicorn's own limits allow a longer head, but no client of snekbox sends more than a few
# hundred bytes of headers; this bounds what a pending head can hold in memory.
MAX_HEAD_SIZE = 64 * 1024


@dataclass(frozen=True, slots=True)
class ServingSettings:
    """How long and how many connections may wait for their request head, per worker."""

    head_timeout: float = DEFAULT_HEAD_TIMEOUT
    """Seconds from a connection's first wait for a request to its complete head; then 408."""
    max_pending_heads: int = DEFAULT_MAX_PENDING_HEADS
    """Connections whose head is still arriving; past it the oldest one is dropped."""
    max_pending_heads_per_client: int = DEFAULT_MAX_PENDING_HEADS_PER_CLIENT
    """The same, per client address: one slow client cannot crowd out the others."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServingSettings:
        """Read each setting from its variable; unset ones keep their defaults."""
        if env is None:
            env = os.environ
        timeout = positive_number(env, HEAD_TIMEOUT_ENV, float)
        total = positive_number(env, MAX_PENDING_HEADS_ENV, int)
        per_client = positive_number(env, MAX_PENDING_HEADS_PER_CLIENT_ENV, int)
        return cls(
            head_timeout=timeout or DEFAULT_HEAD_TIMEOUT,
            max_pending_heads=int(total) if total else DEFAULT_MAX_PENDING_HEADS,
            max_pending_heads_per_client=(
                int(per_client) if per_client else DEFAULT_MAX_PENDING_HEADS_PER_CLIENT
            ),
        )
