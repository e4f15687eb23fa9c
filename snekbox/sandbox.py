"""The resources one jail holds on the host, acquired in order and released in reverse.

memfs directory of the owning process → the run's tmpfs (`MemFS`) → the run's cgroup
(`RunCgroup`) → the pipe NsJail writes its log to. A cold run holds them for the length of one
`NsJail.python3` call; a pre-started jail (`snekbox.pool`) holds them from the moment it is
started until its run has been collected, so both kinds of run are the same sandbox.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from snekbox.limits.cgroup import CgroupSetup
from snekbox.limits.run_cgroup import CgroupStats, RunCgroup, RunLimits
from snekbox.ownership import current_owner
from snekbox.result import EvalError
from snekbox.snekio import Collection, FileAttachment, FileParsingError, MemFS
from snekbox.snekio.owner_dir import owner_memfs_dir

__all__ = ("MemfsLayout", "Sandbox")


@dataclass(frozen=True, slots=True)
class MemfsLayout:
    """How an engine lays out and collects a run's memfs (its `NsJail` arguments)."""

    root: Path
    instance_size: int
    home: str
    output: str
    files_limit: int
    files_pattern: str
    files_timeout: float


@dataclass(slots=True, eq=False)
class Sandbox:
    """A run's memfs, cgroup and log pipe; `close()` (or leaving ``with``) releases all."""

    layout: MemfsLayout
    memfs: MemFS
    cgroup: RunCgroup
    cgroup_args: list[str]
    """NsJail's options that put the jail into `cgroup`."""
    log_read: int
    log_write: int
    """Handed to NsJail, which closes it (see `snekbox.jail_process.spawn_jail`)."""
    _resources: ExitStack = field(repr=False)

    @classmethod
    def open(cls, layout: MemfsLayout, cgroups: CgroupSetup, limits: RunLimits) -> Sandbox:
        """Acquire every resource of one jail, or none of them (on ``OSError``)."""
        with ExitStack() as resources:
            root = resources.enter_context(owner_memfs_dir(current_owner(), layout.root))
            memfs = resources.enter_context(
                MemFS(layout.instance_size, root, layout.home, layout.output)
            )
            cgroup = RunCgroup(cgroups, limits)
            cgroup_args = resources.enter_context(cgroup)
            log_read, log_write = os.pipe()
            resources.callback(os.close, log_read)
            sandbox = cls(
                layout, memfs, cgroup, cgroup_args, log_read, log_write, resources.pop_all()
            )
        return sandbox

    def write_inputs(self, files: list[FileAttachment]) -> None:
        """Write the request's files into the home, or fail the run with the original's reason."""
        try:
            self.memfs.write_inputs(files)
        except OSError as e:
            raise EvalError(f"{type(e).__name__}: Failed to create file '{e.filename}'.") from e

    def finish(self, release_cgroup: bool = True) -> tuple[CgroupStats, Collection]:
        """The ended run's counters, then (with its processes gone) the files it left.

        With ``release_cgroup`` anything left in the cgroup is killed and the cgroup removed
        first. Without it (the pool, which removes it after the answer is out) nothing can be
        left to kill: NsJail has reaped the jail's first process, and the kernel ends every
        other process of a PID namespace before its first one can be reaped.
        """
        stats = self.cgroup.stats()
        if release_cgroup:
            self.cgroup.remove()
        try:
            collection = self.memfs.collect(
                self.layout.files_limit, self.layout.files_pattern, self.layout.files_timeout
            )
        except FileParsingError as e:
            raise EvalError(f"FileParsingError: {e}") from e
        except TimeoutError as e:
            raise EvalError(f"TimeoutError: {e}") from e
        return stats, collection

    def close(self) -> None:
        """Kill what is left in the cgroup, remove it, unmount the memfs (idempotent)."""
        self._resources.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
