"""Server settings that are not NsJail's: read once from the environment at start-up.

Gunicorn's config file and every worker read the same variables, so the thread count Gunicorn
is given and the number of sandbox slots the app enforces cannot disagree.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from snekbox.layout import INTERPRETER_ROOT as DEFAULT_INTERPRETER_ROOT
from snekbox.limits.table import LIMITS
from snekbox.pool import PoolSettings
from snekbox.services.footprint import (
    RunFootprint,
    default_max_concurrent_runs,
    host_memory,
    runs_that_fit,
)
from snekbox.services.pool_settings import fit_pool, pool_from_env, server_processes
from snekbox.utils.env import positive_number

__all__ = [
    "BODY_TIMEOUT_ENV",
    "MAX_BODY_SIZE_ENV",
    "MAX_CONCURRENT_RUNS_ENV",
    "QUEUE_TIMEOUT_ENV",
    "SLOTS_DIR_ENV",
    "ApiSettings",
    "LimitMaxima",
    "default_max_body_size",
    "max_body_size_from_env",
]

MAX_CONCURRENT_RUNS_ENV = "SNEKBOX_MAX_CONCURRENT_RUNS"
MAX_BODY_SIZE_ENV = "SNEKBOX_MAX_BODY_SIZE"
BODY_TIMEOUT_ENV = "SNEKBOX_BODY_TIMEOUT"
QUEUE_TIMEOUT_ENV = "SNEKBOX_QUEUE_TIMEOUT"
# Set by config/gunicorn.conf.py in the master so that every worker shares one set of slots.
SLOTS_DIR_ENV = "SNEKBOX_SLOTS_DIR"
INTERPRETER_ROOT_ENV = "SNEKBOX_INTERPRETER_ROOT"

MiB = 1024**2

# What the bot may send: up to 100 files of 8 MiB each, base64-encoded, plus code and JSON.
MAX_FILES = 100
MAX_FILE_SIZE = 8 * MiB
CODE_AND_JSON_ALLOWANCE = 4 * MiB

DEFAULT_BODY_TIMEOUT = 10.0
# A queued request plus a default 6 s run still answers within a client's 10 s timeout.
DEFAULT_QUEUE_TIMEOUT = 3.0


def _base64_size(size: int) -> int:
    """Length of the base64 text for `size` bytes (4 characters per started 3 bytes)."""
    return 4 * math.ceil(size / 3)


def default_max_body_size() -> int:
    """The body cap that still admits 100 files of 8 MiB in base64, plus code (about 1.1 GB)."""
    return MAX_FILES * _base64_size(MAX_FILE_SIZE) + CODE_AND_JSON_ALLOWANCE


def max_body_size_from_env(env: Mapping[str, str]) -> int:
    """`SNEKBOX_MAX_BODY_SIZE`, or the default body cap."""
    body = positive_number(env, MAX_BODY_SIZE_ENV, int)
    return int(body) if body else default_max_body_size()


_DEFAULT_MAXIMA = {limit.name: limit.default_maximum for limit in LIMITS}


@dataclass(frozen=True, slots=True)
class LimitMaxima:
    """The most a request's `limits` may ask for; the field names are the request's keys.

    Each default and setting comes from `snekbox.limits.table.LIMITS` (the fields are spelt
    out for readers and type checkers; the check below the class holds them to the table). A
    run that asks for more memory takes more run slots (see `LimitPolicy.slots_for`), so
    raising the memory limit never lets the server pin more memory than its slot count was
    sized for.
    """

    time: int = _DEFAULT_MAXIMA["time"]
    memory: int = _DEFAULT_MAXIMA["memory"]
    pids: int = _DEFAULT_MAXIMA["pids"]
    output_size: int = _DEFAULT_MAXIMA["output_size"]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LimitMaxima:
        """Read each maximum from its limit's setting; unset ones keep their defaults."""
        values = {
            limit.name: int(value)
            for limit in LIMITS
            if (value := positive_number(env, limit.maximum_env, int)) is not None
        }
        return cls(**values)

    def as_dict(self) -> dict[str, int]:
        """The maxima keyed like a request's `limits` object."""
        return {limit.name: getattr(self, limit.name) for limit in LIMITS}


assert [field.name for field in fields(LimitMaxima)] == [limit.name for limit in LIMITS]


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Limits the HTTP layer enforces before a request reaches a sandbox."""

    max_concurrent_runs: int
    """Sandboxes running at once across the whole server; more requests wait for a slot."""
    max_body_size: int
    """Largest request body in bytes; larger ones are answered 413 without being read."""
    body_timeout: float
    """Seconds a client may go without sending any of its body before it is answered 408."""
    slots_dir: str | None = None
    """Directory of lock files that share the run slots between worker processes."""
    queue_timeout: float = DEFAULT_QUEUE_TIMEOUT
    """Seconds a request may wait for a run slot before it is answered 429."""
    max_limits: LimitMaxima = LimitMaxima()
    """How far a request's `limits` may raise each limit."""
    interpreter_root: str = DEFAULT_INTERPRETER_ROOT
    """The only directory `executable_path` may name an interpreter in (what /info lists)."""
    pool: PoolSettings | None = None
    """The pre-started jails this process keeps (see `snekbox.services.pool_settings`)."""

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, footprint: RunFootprint | None = None
    ) -> ApiSettings:
        """Read the settings from environment variables, with defaults sized for this host.

        Without `SNEKBOX_MAX_CONCURRENT_RUNS` the slot count is what fits in memory at
        `footprint` per run, by default that of an `NsJail()` with its default config.
        """
        if env is None:
            env = os.environ
        footprint = footprint or RunFootprint.of_default_engine()
        interpreter_root = env.get(INTERPRETER_ROOT_ENV) or DEFAULT_INTERPRETER_ROOT
        max_limits = LimitMaxima.from_env(env)
        pool = pool_from_env(env, interpreter_root, max_limits.time)
        processes = server_processes(env)
        memory = host_memory()  # read once: both the slot count and the pool's room use it
        runs = positive_number(env, MAX_CONCURRENT_RUNS_ENV, int)
        if not runs:
            reserved = pool.total * processes if pool else 0
            runs = default_max_concurrent_runs(footprint, memory, reserved)
        if pool is not None:
            pool = fit_pool(pool, runs_that_fit(footprint, memory) - int(runs), processes)
        timeout = positive_number(env, BODY_TIMEOUT_ENV, float)
        queue_timeout = positive_number(env, QUEUE_TIMEOUT_ENV, float)
        return cls(
            max_concurrent_runs=int(runs),
            max_body_size=max_body_size_from_env(env),
            body_timeout=timeout or DEFAULT_BODY_TIMEOUT,
            slots_dir=env.get(SLOTS_DIR_ENV) or None,
            queue_timeout=queue_timeout or DEFAULT_QUEUE_TIMEOUT,
            max_limits=max_limits,
            interpreter_root=interpreter_root,
            pool=pool,
        )
