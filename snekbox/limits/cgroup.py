"""Detect the cgroup version and prepare the parent cgroups NsJail puts each run under.

NsJail creates one child cgroup per run (``NSJAIL.<pid>``) below a parent that must already
exist and, on cgroup v2, must have the memory and pids controllers enabled for its children.
Preparing that parent is the host's job, so it happens here, at start-up and in provisioning.

- cgroup v1 (and hybrid hosts, whose controllers live on v1): the parents are
  ``<cgroup_mem_mount>/<cgroup_mem_parent>`` and ``<cgroup_pids_mount>/<cgroup_pids_parent>``.
- cgroup v2: a dedicated ``snekbox`` cgroup below the v2 mount holds no processes, so enabling
  controllers for its children never breaks the "no internal processes" rule. If the mount's
  own cgroup holds processes and is not the real root (a container with a cgroup namespace),
  they are moved into a leaf ``init`` cgroup first, as container init systems do.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from snekbox.config_pb2 import NsJailConfig
from snekbox.snekio import filesystem

__all__ = (
    "CgroupSetup",
    "detect_version",
    "init",
    "kill_and_remove",
    "kill_run_processes",
    "owner_run_cgroups",
    "recreate_parents",
    "remove_leftovers",
    "remove_run_tree",
)

log = logging.getLogger(__name__)

V2_PARENT_NAME = "snekbox"
V2_INIT_LEAF = "init"
CONTROLLERS = ("memory", "pids")
OPTIONAL_CONTROLLERS = ("cpu",)  # enabled for runs when the host delegates it
CHILD_PREFIX = "NSJAIL."
RUN_PREFIX = "run-"


@dataclass(frozen=True)
class CgroupSetup:
    """Where this host's runs get their cgroups (see ``snekbox.limits.run_cgroup``)."""

    version: int
    memory_parent: Path
    pids_parent: Path
    memory_mount: Path | None = None  # cgroup v1 only: where the memory controller is mounted
    pids_mount: Path | None = None  # cgroup v1 only: where the pids controller is mounted
    other_parents: tuple[Path, ...] = ()
    """cgroup v1 only: the parents of other controllers NsJail uses by itself (cpu, net_cls)."""

    def run_cgroups(self) -> list[Path]:
        """Every per-run cgroup (``run-*`` and ``NSJAIL.*``) below the parents."""
        return [
            child
            for parent in {self.memory_parent, self.pids_parent, *self.other_parents}
            if parent.is_dir()
            for child in parent.iterdir()
            if child.name.startswith((CHILD_PREFIX, RUN_PREFIX)) and child.is_dir()
        ]


def detect_version(root: str | Path = "/sys/fs/cgroup") -> int:
    """2 when ``root`` is a pure cgroup v2 mount, else 1 (v1, or hybrid with v1 controllers)."""
    return 2 if Path(root, "cgroup.controllers").exists() else 1


def init(config: NsJailConfig, root: str | Path = "/sys/fs/cgroup") -> CgroupSetup:
    """Create the parent cgroups for the configured limits and return how to use them.

    Raises ``OSError`` with a message naming the path when the hierarchy cannot be prepared,
    because running without the memory and pids limits would be silently unsafe.
    """
    if detect_version(root) == 2:
        return _init_v2(Path(config.cgroupv2_mount or root))
    return _init_v1(config)


def _init_v1(config: NsJailConfig) -> CgroupSetup:
    setup = CgroupSetup(
        1,
        Path(config.cgroup_mem_mount, config.cgroup_mem_parent),
        Path(config.cgroup_pids_mount, config.cgroup_pids_parent),
        memory_mount=Path(config.cgroup_mem_mount),
        pids_mount=Path(config.cgroup_pids_mount),
    )
    _make_v1_parents(setup)
    others = (_prepare_v1_parent(*spec) for spec in _other_v1_controllers(config))
    setup = replace(setup, other_parents=tuple(parent for parent in others if parent))
    log.debug("cgroup v1 parents ready: %s, %s, %s", setup.memory_parent, setup.pids_parent,
              setup.other_parents)  # fmt: skip
    return setup


def _other_v1_controllers(config: NsJailConfig) -> list[tuple[str, Path, str, bool]]:
    """(controller, mount, parent, required) for the controllers NsJail limits by itself.

    NsJail makes its own per-run cgroup below ``<mount>/<parent>`` for cpu and net_cls and
    needs the parent to exist. cpu is prepared whenever it is mounted, so that an
    ``--cgroup_cpu_ms_per_sec`` option works too; net_cls only when the config uses it, as
    its hierarchy may first have to be mounted.
    """
    return [
        ("cpu", Path(config.cgroup_cpu_mount), config.cgroup_cpu_parent,
         bool(config.cgroup_cpu_ms_per_sec)),
        ("net_cls", Path(config.cgroup_net_cls_mount), config.cgroup_net_cls_parent,
         bool(config.cgroup_net_cls_classid)),
    ]  # fmt: skip


def _prepare_v1_parent(controller: str, mount: Path, parent: str, required: bool) -> Path | None:
    """Create ``<mount>/<parent>``, mounting the controller's hierarchy if the config needs it.

    Returns None when the controller is neither mounted nor needed.
    """
    if not _is_v1_hierarchy(mount):
        if not required:
            return None
        mount.mkdir(parents=True, exist_ok=True)
        filesystem.mount("cgroup", mount, "cgroup", **{controller: ""})
        log.info("Mounted the cgroup v1 %s controller at %s", controller, mount)
    path = mount / parent
    path.mkdir(exist_ok=True)
    return path


def _is_v1_hierarchy(path: Path) -> bool:
    """Whether ``path`` is a mounted cgroup v1 hierarchy (it has a tasks file at its root)."""
    return os.path.ismount(path) and (path / "tasks").exists()


def _make_v1_parents(setup: CgroupSetup) -> None:
    memory = setup.memory_parent
    for parent in (memory, setup.pids_parent):
        if not parent.parent.is_dir():
            raise OSError(
                errno.ENOENT,
                f"cgroup v1 controller mount {parent.parent} does not exist; mount the memory "
                "and pids controllers or run on a cgroup v2 host",
            )
        parent.mkdir(exist_ok=True)
    # Children inherit nothing they need from the parent, but a v1 memory hierarchy must be
    # hierarchical for the per-run limit to count the run's children.
    use_hierarchy = memory / "memory.use_hierarchy"
    if use_hierarchy.exists() and use_hierarchy.read_text().strip() != "1":
        try:
            use_hierarchy.write_text("1")
        except OSError as e:
            log.warning("Could not enable memory.use_hierarchy in %s: %s", memory, e)


def recreate_parents(setup: CgroupSetup) -> None:
    """Make the parents of ``setup`` again after someone removed them (idempotent).

    Provisioning and start-up made them; a parent removed later (a cleanup script, a host
    agent) would otherwise fail every run until someone made it again by hand.
    """
    log.warning(
        "The parent cgroup(s) %s vanished; making them again.",
        ", ".join(sorted({str(setup.memory_parent), str(setup.pids_parent)})),
    )
    if setup.version == 1:
        _make_v1_parents(setup)
        return
    setup.memory_parent.mkdir(exist_ok=True)
    _enable_controllers(setup.memory_parent.parent)
    _enable_controllers(setup.memory_parent)


def _enable_controllers(cgroup: Path) -> None:
    """Enable the required controllers, and the optional ones the cgroup has, for children."""
    available = _read_words(cgroup / "cgroup.controllers")
    enabled = _read_words(cgroup / "cgroup.subtree_control")
    optional = [c for c in OPTIONAL_CONTROLLERS if c in available]
    wanted = [c for c in (*CONTROLLERS, *optional) if c not in enabled]
    if wanted:
        (cgroup / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in wanted))


def _read_words(path: Path) -> list[str]:
    """The words of a cgroup file; none when the cgroup is gone or going (ENOENT, ENODEV)."""
    try:
        return path.read_text().split()
    except OSError:
        return []


def _init_v2(mount: Path) -> CgroupSetup:
    available = _read_words(mount / "cgroup.controllers")
    missing = [c for c in CONTROLLERS if c not in available]
    if missing:
        raise OSError(
            errno.ENOTSUP,
            f"cgroup v2 at {mount} lacks the {', '.join(missing)} controller(s); "
            "delegate them to this container or host",
        )
    try:
        _enable_controllers(mount)
    except OSError as e:
        if e.errno != errno.EBUSY:
            raise
        # The mount's cgroup holds processes and is a namespace root, not the real root.
        leaf = mount / V2_INIT_LEAF
        leaf.mkdir(exist_ok=True)
        for pid in _read_words(mount / "cgroup.procs"):
            try:
                (leaf / "cgroup.procs").write_text(pid)
            except OSError as move_error:
                if move_error.errno != errno.ESRCH:  # the process already exited
                    raise
        _enable_controllers(mount)
    parent = mount / V2_PARENT_NAME
    parent.mkdir(exist_ok=True)
    _enable_controllers(parent)
    log.debug("cgroup v2 parent ready: %s", parent)
    return CgroupSetup(2, parent, parent)


def remove_leftovers(setup: CgroupSetup) -> int:
    """Kill and remove per-run cgroups left by a dead server; return how many were removed.

    Run cgroups named after an owner (``run-<pid>-<start time>-<id>``, see
    ``snekbox.ownership``) are left to the owners' sweep, which decides from the owner's lock.
    Older servers named them ``run-<server pid>-<id>``; one whose server process is gone was
    left by a crash. NsJail's own ``NSJAIL.<jail pid>``
    cgroups directly below a parent belong to a live run exactly when the jailed process still
    exists and is a child of an ``nsjail`` process. Other workers' live runs are never touched.
    """
    removed = 0
    for cgroup in setup.run_cgroups():
        if cgroup.name.startswith(RUN_PREFIX):
            if _names_an_owner(cgroup.name) or _owner_alive(cgroup.name):
                continue
            # NsJail's own cgroup inside a stale run cgroup goes first (v2 nests them).
            for child in [c for c in cgroup.iterdir() if c.is_dir()]:
                kill_and_remove(child)
        else:
            try:
                jail_pid = int(cgroup.name.removeprefix(CHILD_PREFIX))
            except ValueError:
                continue
            if _is_live_jail(jail_pid):
                continue
        if kill_and_remove(cgroup):
            removed += 1
    return removed


def _names_an_owner(name: str) -> bool:
    """Whether a run cgroup is named ``run-<pid>-<start time>-<id>`` (after its owner)."""
    return len(name.removeprefix(RUN_PREFIX).split("-")) == 3


def owner_run_cgroups(parents: set[Path], owner: str) -> list[Path]:
    """The run cgroups of ``owner`` below ``parents`` (run cgroups are named after owners)."""
    prefix = f"{RUN_PREFIX}{owner}-"
    return [
        child
        for parent in parents
        if parent.is_dir()
        for child in parent.iterdir()
        if child.name.startswith(prefix) and child.is_dir()
    ]


def _tree(cgroup: Path) -> list[Path]:
    """``cgroup`` and every cgroup below it, deepest first.

    NsJail may remove its own cgroup below a run's while this walks, so what vanishes is
    skipped (``os.walk`` ignores directories it can no longer list) rather than raised.
    """
    found = [Path(directory) for directory, _, files in os.walk(cgroup) if "cgroup.procs" in files]
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def _parent_pid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def kill_run_processes(cgroup: Path, *, supervisor: bool = True) -> int:
    """SIGKILL every process in a run's cgroup tree, and the NsJail that supervises it.

    The jail's processes are in the cgroups; NsJail itself stays in its server's cgroup, so it
    is found as the parent of a jailed process. A dead owner's NsJail is killed too, so none is
    left waiting; a live owner's (``supervisor=False``) is left to report the kill as usual.
    Returns how many processes were signalled.
    """
    pids = {int(pid) for path in _tree(cgroup) for pid in _read_words(path / "cgroup.procs")}
    supervisors = set()
    for pid in pids if supervisor else ():
        parent = _parent_pid(pid)
        if parent and parent not in pids and _comm(parent) == "nsjail":
            supervisors.add(parent)
    for pid in supervisors | pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(supervisors | pids)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def remove_run_tree(cgroup: Path, *, quiet: bool = False) -> bool:
    """Kill and remove a run cgroup and the cgroups below it (NsJail's); True when gone."""
    kill_run_processes(cgroup)
    for path in _tree(cgroup):
        if path != cgroup:
            kill_and_remove(path, quiet=True)
    return kill_and_remove(cgroup, quiet=quiet) or not cgroup.exists()


def _owner_alive(name: str) -> bool:
    """Whether the server process that created run cgroup ``run-<pid>-<id>`` still runs."""
    try:
        owner = int(name.removeprefix(RUN_PREFIX).split("-", 1)[0])
    except ValueError:
        return False
    return Path(f"/proc/{owner}").exists()


def _is_live_jail(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        return Path(f"/proc/{parent}/comm").read_text().strip() == "nsjail"
    except (OSError, ValueError, IndexError):
        return False


def kill_and_remove(cgroup: Path, attempts: int = 50, *, quiet: bool = False) -> bool:
    """SIGKILL every process in ``cgroup`` until it can be removed; True once removed."""
    for _ in range(attempts):
        pids = _read_words(cgroup / "cgroup.procs")
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            cgroup.rmdir()
        except FileNotFoundError:
            return False  # NsJail removed it meanwhile
        except OSError as e:
            if e.errno != errno.EBUSY:
                log.warning("Could not remove leftover cgroup %s: %s", cgroup, e)
                return False
            time.sleep(0.02)
            continue
        if not quiet:
            log.warning("Removed leftover cgroup %s", cgroup)
        return True
    log.error("Leftover cgroup %s still busy after killing its processes", cgroup)
    return False


def main() -> int:
    """Prepare the parent cgroups for the default config (used by provisioning)."""
    from snekbox.jail_config import read_config

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config_path = sys.argv[1] if len(sys.argv) > 1 else "config/snekbox.cfg"
    try:
        setup = init(read_config(config_path))
    except OSError as e:
        log.error("Could not prepare cgroups: %s", e)
        return 1
    log.info(
        "cgroup v%d ready: memory parent %s, pids parent %s",
        setup.version,
        setup.memory_parent,
        setup.pids_parent,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
