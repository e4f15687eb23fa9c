"""One cgroup per run, owned by snekbox, so its limits and counters outlive NsJail.

NsJail removes the cgroup it creates as soon as the program ends, taking the OOM and pids
counters with it. snekbox therefore creates ``run-<owner>-<id>`` below the prepared parent
first, puts the run's real limits on it, and points NsJail's own per-run cgroup below it with
slightly looser limits. The kernel then enforces the limit at snekbox's cgroup (the binding
one), counts limit hits there, and the counters can be read after NsJail is gone. snekbox
removes the cgroup afterwards, killing anything left in it. ``<owner>`` names the process that
made it (see ``snekbox.ownership``), so the cgroups of a killed worker's runs are found and
removed by whoever sweeps after it. A parent that has vanished is made again.

Counters read after a run (decision facts for the run's status):
- ``memory_peak``: v1 ``memory.max_usage_in_bytes``, v2 ``memory.peak`` (hierarchical).
- ``oom_kills``: v1 ``memory.oom_control`` ``oom_kill``, v2 ``memory.events`` ``oom_kill``.
  cgroup v1 counts the kill only in the cgroup where the OOM happened, which may be NsJail's
  nested one (already gone), so ``memory_limit_reached`` (the peak reached the limit) is
  recorded as well.
- ``pids_limit_hits``: ``pids.events`` ``max``, forks refused at the limit; with the same
  v1 caveat, ``pids.peak`` reaching the limit is recorded as ``pids_limit_reached``.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

from snekbox.limits.cgroup import (
    OPTIONAL_CONTROLLERS,
    RUN_PREFIX,
    CgroupSetup,
    kill_and_remove,
    kill_run_processes,
    recreate_parents,
)
from snekbox.ownership import current_owner

__all__ = ("RECORD_KIND", "CgroupStats", "RunCgroup", "RunLimits")

log = logging.getLogger(__name__)

NSJAIL_MEMORY_SLACK = 1024 * 1024
"""Bytes added to NsJail's own memory limit so that snekbox's cgroup is the one that binds."""

NSJAIL_PIDS_SLACK = 1
"""Processes added to NsJail's own pids limit for the same reason."""

RECORD_KIND = "cgroup"
"""How an owner's file names a cgroup parent it makes run cgroups in (see ``Owner.record``)."""

PAGE_SLACK = 64 * 1024
"""How close to the memory limit a peak must come to count as having reached it."""


@dataclass(frozen=True, slots=True)
class RunLimits:
    """The cgroup limits of one run; 0 means unlimited, a negative swap means unlimited."""

    memory: int
    swap: int
    pids: int


@dataclass(frozen=True, slots=True)
class CgroupStats:
    """What the kernel counted for a run's cgroup; ``None`` where the kernel has no counter."""

    memory_peak: int | None
    oom_kills: int
    pids_limit_hits: int
    memory_limit_reached: bool = False
    pids_limit_reached: bool = False

    @property
    def out_of_memory(self) -> bool:
        """The kernel counted an OOM kill, or the run's memory peak reached its limit."""
        return self.oom_kills > 0 or self.memory_limit_reached

    @property
    def out_of_pids(self) -> bool:
        """The kernel refused a fork at the pids limit, or the run's pids peak reached it."""
        return self.pids_limit_hits > 0 or self.pids_limit_reached


def _read_keyed(path: Path) -> dict[str, int]:
    """Parse ``key value`` lines (memory.events, pids.events, memory.oom_control)."""
    values: dict[str, int] = {}
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if value.strip().lstrip("-").isdigit():
                values[key] = int(value)
    except OSError:
        pass
    return values


def _read_words(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:
        return []


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class RunCgroup:
    """The cgroup(s) of one run: created with limits, read after the run, then removed."""

    def __init__(self, setup: CgroupSetup, limits: RunLimits) -> None:
        self.setup = setup
        self.limits = limits
        self.owner = current_owner()
        self.name = f"{RUN_PREFIX}{self.owner.name}-{uuid.uuid4().hex[:12]}"
        self.memory = setup.memory_parent / self.name
        self.pids = setup.pids_parent / self.name

    def create(self) -> list[str]:
        """Create the cgroup(s) with the run's limits; return the NsJail options to use them."""
        for path in {self.memory, self.pids}:
            self.owner.record(RECORD_KIND, path.parent)
        try:
            for path in {self.memory, self.pids}:
                try:
                    path.mkdir()
                except FileNotFoundError:
                    recreate_parents(self.setup)
                    path.mkdir()
            return self._apply_limits()
        except OSError:
            self.remove()
            raise

    def __enter__(self) -> list[str]:
        """Create the cgroup(s); the NsJail options to use them (see ``create``)."""
        return self.create()

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    def _apply_limits(self) -> list[str]:
        limits = self.limits
        nsjail_memory = limits.memory + NSJAIL_MEMORY_SLACK if limits.memory else 0
        nsjail_pids = limits.pids + NSJAIL_PIDS_SLACK if limits.pids else 0
        args = [
            "--cgroup_mem_max",
            str(nsjail_memory),
            "--cgroup_pids_max",
            str(nsjail_pids),
            # Swap is limited here, at the binding cgroup, never by NsJail.
            "--cgroup_mem_swap_max",
            "-1",
            "--cgroup_mem_memsw_max",
            "0",
        ]
        if self.setup.version == 2:
            if limits.memory:
                (self.memory / "memory.max").write_text(str(limits.memory))
            if limits.swap >= 0 and (self.memory / "memory.swap.max").exists():
                (self.memory / "memory.swap.max").write_text(str(limits.swap))
            if limits.pids:
                (self.pids / "pids.max").write_text(str(limits.pids))
            # NsJail's own cgroup below needs every controller it sets a limit with.
            available = _read_words(self.memory / "cgroup.controllers")
            wanted = ["memory", "pids", *(c for c in OPTIONAL_CONTROLLERS if c in available)]
            (self.memory / "cgroup.subtree_control").write_text(
                " ".join(f"+{controller}" for controller in wanted)
            )
            return [*args, "--use_cgroupv2", "--cgroupv2_mount", str(self.memory)]
        if limits.memory:
            (self.memory / "memory.limit_in_bytes").write_text(str(limits.memory))
            memsw = self.memory / "memory.memsw.limit_in_bytes"
            if limits.swap >= 0 and memsw.exists():
                memsw.write_text(str(limits.memory + limits.swap))
        if limits.pids:
            (self.pids / "pids.max").write_text(str(limits.pids))
        assert self.setup.memory_mount is not None and self.setup.pids_mount is not None
        return [
            *args,
            "--cgroup_mem_mount",
            str(self.setup.memory_mount),
            "--cgroup_mem_parent",
            str(self.memory.relative_to(self.setup.memory_mount)),
            "--cgroup_pids_mount",
            str(self.setup.pids_mount),
            "--cgroup_pids_parent",
            str(self.pids.relative_to(self.setup.pids_mount)),
        ]

    def tighten(self, limits: RunLimits) -> None:
        """Lower the binding limits of a jail that is already running to ``limits``.

        A pre-started jail is made with the config's limits; a request that asks for less
        gets it here, at hand-over. Only lowering is possible (NsJail's own cgroup below keeps
        the looser limits it was started with), so the caller checks ``limits`` is no higher.
        Raises ``OSError`` when the kernel refuses (usage already above the new limit).
        """
        old = self.limits
        memory_files = ("memory.max", "memory.swap.max", None)
        if self.setup.version == 1:
            memory_files = ("memory.limit_in_bytes", None, "memory.memsw.limit_in_bytes")
        limit_file, swap_file, memsw_file = memory_files
        if limits.memory != old.memory:
            (self.memory / limit_file).write_text(str(limits.memory))
        if limits.swap >= 0 and (limits.memory, limits.swap) != (old.memory, old.swap):
            if swap_file and (self.memory / swap_file).exists():
                (self.memory / swap_file).write_text(str(limits.swap))
            if memsw_file and (self.memory / memsw_file).exists():
                (self.memory / memsw_file).write_text(str(limits.memory + limits.swap))
        if limits.pids != old.pids:
            (self.pids / "pids.max").write_text(str(limits.pids))
        self.limits = limits

    def stats(self) -> CgroupStats:
        """The counters of the finished run (see the module docstring for their sources)."""
        if self.setup.version == 2:
            peak = _read_int(self.memory / "memory.peak")
            oom_kills = _read_keyed(self.memory / "memory.events").get("oom_kill", 0)
        else:
            peak = _read_int(self.memory / "memory.max_usage_in_bytes")
            oom_kills = _read_keyed(self.memory / "memory.oom_control").get("oom_kill", 0)
        pids_hits = _read_keyed(self.pids / "pids.events").get("max", 0)
        pids_peak = _read_int(self.pids / "pids.peak")
        limits = self.limits
        # Within a page of the limit counts as reaching it: charges are page-granular.
        memory_reached = bool(limits.memory and peak and peak >= limits.memory - PAGE_SLACK)
        pids_reached = bool(limits.pids and pids_peak and pids_peak >= limits.pids)
        return CgroupStats(peak, oom_kills, pids_hits, memory_reached, pids_reached)

    def kill(self) -> None:
        """SIGKILL every process of the run, leaving NsJail to report the kill (137)."""
        for path in {self.memory, self.pids}:
            if path.is_dir():
                kill_run_processes(path, supervisor=False)

    def remove(self) -> None:
        """Kill anything left in the run's cgroups and remove them (NsJail's nested one too)."""
        for path in {self.memory, self.pids}:
            if not path.is_dir():
                continue
            for child in [c for c in path.iterdir() if c.is_dir()]:
                kill_and_remove(child, quiet=True)
            if not kill_and_remove(path, quiet=True) and path.is_dir():
                log.error("Could not remove run cgroup %s", path)
