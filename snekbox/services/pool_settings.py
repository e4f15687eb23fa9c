"""The pre-started jails' settings, read from the environment, and the memory they cost.

Each server process keeps its own waiting jails (Gunicorn's workers share nothing but the run
slots), so the memory they may come to hold is ``jails per process x processes`` default runs:
a waiting jail becomes a run the moment a request takes it. The default run-slot count
subtracts them, and an explicit slot count that leaves no room shrinks the pool to fit.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from snekbox import layout
from snekbox.jail_config import DEFAULT_EXECUTABLE_PATH
from snekbox.pool import PoolSettings
from snekbox.utils.env import positive_number

__all__ = [
    "DEFAULT_POOL_SIZE",
    "POOL_ENV",
    "POOL_IDLE_AGE_ENV",
    "POOL_SIZE_ENV",
    "WORKERS_ENV",
    "default_names",
    "fit_pool",
    "pool_from_env",
    "server_processes",
]

log = logging.getLogger(__name__)

POOL_ENV = "SNEKBOX_POOL"
POOL_SIZE_ENV = "SNEKBOX_POOL_SIZE"
POOL_IDLE_AGE_ENV = "SNEKBOX_POOL_IDLE_AGE"
WORKERS_ENV = "SNEKBOX_WORKERS"
"""Server processes that each keep a pool; config/gunicorn.conf.py sets it to its workers."""

DEFAULT_POOL_SIZE = 2
"""Waiting jails per process for each name of the default interpreter: enough for a burst of
two, few enough that their refill never competes with runs for a small machine's cores for
long."""
DEFAULT_IDLE_AGE = 60.0
DEFAULT_NAME = layout.DEFAULT_INTERPRETER
_OFF = {"0", "off", "false", "no"}
_ON = {"1", "on", "true", "yes"}


def _switch(env: Mapping[str, str]) -> bool:
    raw = env.get(POOL_ENV, "").strip().lower()
    if raw and raw not in _OFF | _ON:
        raise ValueError(f"{POOL_ENV} must be on or off, not {env[POOL_ENV]!r}")
    return raw not in _OFF


def _executable(name: str, interpreter_root: str) -> str:
    """The executable path a request names for interpreter directory ``name``."""
    if name == DEFAULT_NAME:
        return DEFAULT_EXECUTABLE_PATH
    return f"{interpreter_root.rstrip('/')}/{name}/bin/python"


def default_names(interpreter_root: str) -> list[str]:
    """The names requests use for the default interpreter: ``default`` and its target.

    Requests without ``executable_path`` run ``default``; the bot names the interpreter the
    link points to by its own directory. A jail started under one name cannot serve the
    other (``sys.executable`` differs), so both get jails.
    """
    link = Path(interpreter_root) / DEFAULT_NAME
    target = Path(os.path.realpath(link))
    if target.parent == Path(os.path.realpath(interpreter_root)) and target.name != DEFAULT_NAME:
        return [DEFAULT_NAME, target.name]
    return [DEFAULT_NAME]


def _sizes(env: Mapping[str, str], interpreter_root: str) -> dict[str, int]:
    """``SNEKBOX_POOL_SIZE``: ``N`` (both names of the default interpreter) or ``name=N`` pairs."""
    raw = env.get(POOL_SIZE_ENV, "").strip() or str(DEFAULT_POOL_SIZE)
    pairs = [item.partition("=") for item in raw.split(",") if item.strip()]
    sizes: dict[str, int] = {}
    for name, equals, count in pairs:
        names = [name.strip()] if equals else default_names(interpreter_root)
        count = count.strip() if equals else name.strip()
        if not count.isdigit() or not all(names) or any("/" in name for name in names):
            raise ValueError(
                f"{POOL_SIZE_ENV} must be a count or name=count pairs (e.g. default=2,3.12=1), "
                f"not {raw!r}"
            )
        for name in names:
            sizes[_executable(name, interpreter_root)] = int(count)
    return {executable: size for executable, size in sizes.items() if size}


def server_processes(env: Mapping[str, str]) -> int:
    """How many server processes keep a pool each (1 outside the project's Gunicorn config)."""
    return int(positive_number(env, WORKERS_ENV, int) or 1)


def pool_from_env(
    env: Mapping[str, str], interpreter_root: str, max_time: int
) -> PoolSettings | None:
    """The pool settings, or None when the pool is off or sized to nothing."""
    if not _switch(env):
        return None
    sizes = _sizes(env, interpreter_root)
    idle_age = positive_number(env, POOL_IDLE_AGE_ENV, float) or DEFAULT_IDLE_AGE
    return PoolSettings(sizes, idle_age, max_time) if sizes else None


def fit_pool(pool: PoolSettings, room: int, processes: int) -> PoolSettings | None:
    """``pool`` shrunk so that ``processes`` copies fit in ``room`` default runs of memory."""
    if pool.total * processes <= room:
        return pool
    per_process = max(0, room // processes)
    sizes: dict[str, int] = {}
    for executable, size in pool.sizes.items():
        take = min(size, per_process - sum(sizes.values()))
        if take > 0:
            sizes[executable] = take
    log.warning(
        "The run slots leave memory for %d waiting jail(s) per process, not %d; the pool keeps "
        "%d (lower SNEKBOX_MAX_CONCURRENT_RUNS or SNEKBOX_POOL_SIZE)",
        per_process,
        pool.total,
        sum(sizes.values()),
    )
    return PoolSettings(sizes, pool.idle_age, pool.max_time) if sizes else None
