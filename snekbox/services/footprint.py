"""How much host memory one run can pin, read from the engine's own configuration.

A run pins its memory cgroup's limit plus two tmpfs mounts whose pages stay resident until the
mounts go away: its home (the engine's memfs, `NsJail.memfs_instance_size`) and the `/dev/shm`
mount of the NsJail config. The default slot count and the slot weight of a run that raises its
memory limit are both computed from this, so they follow the config instead of a copy of it.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from snekbox.config_pb2 import NsJailConfig
from snekbox.jail_config import DEFAULT_CONFIG_PATH, DEFAULT_MEMFS_INSTANCE_SIZE, read_config

__all__ = [
    "MAX_DEFAULT_RUNS",
    "RunFootprint",
    "default_max_concurrent_runs",
    "host_memory",
    "runs_that_fit",
]

SHM_MOUNT = "/dev/shm"
# More slots than this only queues more CPU-bound work on a small machine's cores; raise the
# setting explicitly on a big host.
MAX_DEFAULT_RUNS = 32
_SIZE_SUFFIXES = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def _tmpfs_size(options: str) -> int:
    """The `size=` of a tmpfs option string ("size=40m,mode=1777"), in bytes; 0 when unset.

    A percentage of RAM ("size=50%") is a tmpfs size too, but no NsJail config of ours uses
    one; it is refused rather than guessed.
    """
    for option in options.split(","):
        name, _, value = option.strip().partition("=")
        if name != "size":
            continue
        value = value.strip().lower()
        number, suffix = (value[:-1], value[-1]) if value[-1:].isalpha() else (value, "")
        if not number.isdigit() or suffix not in _SIZE_SUFFIXES:
            raise ValueError(f"cannot size the tmpfs option {option.strip()!r}")
        return int(number) * _SIZE_SUFFIXES[suffix]
    return 0


@dataclass(frozen=True, slots=True)
class RunFootprint:
    """The host memory of one run: its memory limit plus its resident tmpfs mounts."""

    memory_limit: int
    """The config's `cgroup_mem_max`: what a run that sets no limit may use."""
    tmpfs: int
    """The home memfs plus the config's /dev/shm, whatever the run's memory limit."""

    @classmethod
    def of(cls, config: NsJailConfig, memfs_instance_size: int) -> RunFootprint:
        """The footprint of a default run of an engine with `config` and that memfs size."""
        shm = sum(_tmpfs_size(mount.options) for mount in config.mount if mount.dst == SHM_MOUNT)
        return cls(config.cgroup_mem_max, memfs_instance_size + shm)

    @classmethod
    @functools.cache
    def of_default_engine(cls) -> RunFootprint:
        """The footprint of `NsJail()` with its default config (the Gunicorn config's app)."""
        return cls.of(read_config(DEFAULT_CONFIG_PATH), DEFAULT_MEMFS_INSTANCE_SIZE)

    def with_memory(self, memory_limit: int) -> int:
        """Host memory a run allowed `memory_limit` bytes can pin."""
        return memory_limit + self.tmpfs

    @property
    def default_run(self) -> int:
        """Host memory a run at the config's memory limit can pin."""
        return self.with_memory(self.memory_limit)


def _cgroup_memory_limit() -> int | None:
    """The memory limit of the cgroup this server runs in (a container's limit), if any."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        # "max" (v2) or a page-rounded 2**63 (v1) both mean "no limit".
        if text.isdigit() and int(text) < 2**60:
            return int(text)
    return None


def host_memory() -> int:
    """Physical memory, or the container's limit when that is lower."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = _cgroup_memory_limit()
    return min(physical, limit) if limit else physical


def runs_that_fit(footprint: RunFootprint, total_memory: int | None = None) -> int:
    """How many default runs fit in this host's (or container's) memory at their worst case."""
    if total_memory is None:
        total_memory = host_memory()
    return total_memory // footprint.default_run


def default_max_concurrent_runs(
    footprint: RunFootprint, total_memory: int | None = None, reserved: int = 0
) -> int:
    """As many default runs as fit in memory beside ``reserved`` ones, between 1 and 32.

    ``reserved`` counts the pre-started jails the server keeps waiting: each may become a run.
    """
    return max(1, min(MAX_DEFAULT_RUNS, runs_that_fit(footprint, total_memory) - reserved))
