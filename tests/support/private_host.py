"""A server's own corner of the host: memfs root, cgroup parents, owners and temp directories.

Crash tests kill servers and then look for what is left. Other servers run on the same host
(other test sessions share /memfs and the default NSJAIL cgroup parents), so each crash test's
server gets places of its own and the checks look only there; the teardown removes whatever
a failed test left behind, so a failure here never leaks into the next test.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from snekbox.jail_config import read_config
from snekbox.limits import cgroup
from snekbox.snekio import filesystem
from tests.support.server import REPO

MiB = 1024 * 1024
LAUNCHER_MARK = "_snekbox_pool_launch"
"""In the argv of a pre-started jail's NsJail: the launcher its interpreter runs."""


@dataclass
class WaitingJails:
    """What pre-started jails hold: their mounts, run cgroup names and NsJail pids."""

    mounts: set[str]
    cgroup_names: set[str]
    nsjail_pids: set[int]


def pids_in(cgroup: Path) -> set[int]:
    """The processes in a cgroup tree that may be going away while it is read."""
    pids: set[int] = set()
    for directory, _, _ in os.walk(cgroup):  # os.walk skips what vanishes under it
        try:
            pids.update(int(pid) for pid in Path(directory, "cgroup.procs").read_text().split())
        except OSError:
            continue
    return pids


@dataclass
class PrivateHost:
    """Where one test's servers put their runs, and how to look there."""

    directory: Path
    memfs_root: Path
    owners_dir: Path
    tmpdir: Path
    config_path: Path
    cgroups: cgroup.CgroupSetup

    @property
    def app(self) -> str:
        """Gunicorn's app argument: the engine with this host's NsJail config."""
        return f"snekbox:SnekAPI(config_path={str(self.config_path)!r})"

    @property
    def env(self) -> dict[str, str]:
        """Environment that points a server at this host's places."""
        return {
            "SNEKBOX_MEMFS_ROOT": str(self.memfs_root),
            "SNEKBOX_OWNERS_DIR": str(self.owners_dir),
            "TMPDIR": str(self.tmpdir),
        }

    @property
    def parents(self) -> list[Path]:
        return sorted({self.cgroups.memory_parent, self.cgroups.pids_parent})

    def mounts(self) -> list[str]:
        """Mount points below this host's memfs root."""
        prefix = f"{self.memfs_root}/"
        lines = Path("/proc/self/mounts").read_text().splitlines()
        return [line.split()[1] for line in lines if line.split()[1].startswith(prefix)]

    def run_cgroups(self) -> list[Path]:
        """Per-run cgroups below this host's parents."""
        return self.cgroups.run_cgroups()

    def jail_pids(self) -> set[int]:
        """Every process in this host's run cgroups (the jails), nested ones included."""
        return {pid for run in self.run_cgroups() for pid in pids_in(run)}

    def nsjail_pids(self) -> set[int]:
        """NsJail processes whose run binds a home from this host's memfs root."""
        found = set()
        marker = f"{self.memfs_root}/".encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if (proc / "comm").read_text().strip() != "nsjail":
                    continue
                if marker in (proc / "cmdline").read_bytes():
                    found.add(int(proc.name))
            except OSError:
                continue
        return found

    def waiting_jails(self) -> WaitingJails:
        """What the live servers' pre-started jails hold here (their launcher is in argv)."""
        held = WaitingJails(set(), set(), set())
        for pid in self.nsjail_pids():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
            except OSError:
                continue
            if not any(LAUNCHER_MARK in arg for arg in argv):
                continue
            held.nsjail_pids.add(pid)
            for option, value in itertools.pairwise(argv):
                if option == "--bindmount":
                    held.mounts.add(value.split(":", 1)[0].removesuffix("/home"))
                elif option in ("--cgroup_mem_parent", "--cgroup_pids_parent"):
                    held.cgroup_names.add(value.rsplit("/", 1)[-1])
        return held

    def leftovers(self) -> dict[str, object]:
        """Mounts, run cgroups and sandbox processes here, apart from waiting jails'."""
        held = self.waiting_jails()
        runs = [run for run in self.run_cgroups() if run.name not in held.cgroup_names]
        jailed = {pid for run in runs for pid in pids_in(run)}
        found: dict[str, object] = {
            "mounts": [m for m in self.mounts() if m not in held.mounts],
            "cgroups": runs,
            "nsjail": sorted(self.nsjail_pids() - held.nsjail_pids),
            "jailed": sorted(jailed),
        }
        return {key: value for key, value in found.items() if value}

    def temp_dirs(self, prefix: str) -> list[Path]:
        return sorted(self.tmpdir.glob(f"{prefix}*"))


def is_alive(pid: int) -> bool:
    """The process exists and is not a zombie (a zombie holds nothing but its pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def children(pid: int) -> list[int]:
    """Live processes whose parent is `pid`."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if parent_pid(int(proc.name)) == pid and is_alive(int(proc.name)):
                    found.append(int(proc.name))
            except (OSError, ValueError, IndexError):
                continue
    return found


def wait_for(condition: Callable[[], bool], timeout: float, step: float = 0.05) -> float | None:
    """Seconds until `condition()` held, or None if it did not within `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(step)
    return None


def _private_config(directory: Path, parent_name: str) -> Path:
    """The deployed NsJail config with this host's own cgroup parents (cgroup v1)."""
    text = (REPO / "config" / "snekbox.cfg").read_text()
    for key in ("cgroup_mem_parent", "cgroup_pids_parent"):
        text = text.replace(f'{key}: "NSJAIL"', f'{key}: "{parent_name}"')
    path = directory / "snekbox.cfg"
    path.write_text(text)
    return path


def _remove_leftovers(host: PrivateHost) -> None:
    """Kill and remove whatever the test's servers left (only in this host's places)."""
    for pid in host.nsjail_pids() | host.jail_pids():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for run in sorted(host.run_cgroups(), key=lambda p: len(p.parts), reverse=True):
        for nested in sorted(run.glob("*/"), key=lambda p: len(p.parts), reverse=True):
            if nested.is_dir() and (nested / "cgroup.procs").exists():
                cgroup.kill_and_remove(nested, quiet=True)
        cgroup.kill_and_remove(run, quiet=True)
    for parent in host.parents:
        if parent.name != "NSJAIL" and parent.name.startswith("SNEKBOX_TEST_"):
            try:
                parent.rmdir()
            except FileNotFoundError:
                pass
    for mount in sorted(host.mounts(), key=len, reverse=True):
        filesystem.unmount(mount)


@contextmanager
def private_host() -> Iterator[PrivateHost]:
    """Places of the test's own, removed (with anything left in them) afterwards.

    They live in a fresh directory under /tmp rather than pytest's private temp directory:
    NsJail binds the run's home from a user namespace, so every directory above the memfs
    root must be searchable by others, as /memfs is.
    """
    directory = Path(tempfile.mkdtemp(prefix="snekbox-host-", dir="/tmp"))
    os.chmod(directory, 0o755)
    memfs_root = directory / "memfs"
    memfs_root.mkdir(mode=0o755)
    tmpdir = directory / "tmp"
    tmpdir.mkdir()
    parent_name = f"SNEKBOX_TEST_{uuid.uuid4().hex[:8]}"
    config_path = _private_config(directory, parent_name)
    host = PrivateHost(
        directory,
        memfs_root,
        directory / "owners",
        tmpdir,
        config_path,
        cgroup.init(read_config(config_path)),
    )
    try:
        yield host
    finally:
        _remove_leftovers(host)
        if not host.mounts():  # never delete recursively through a mounted tmpfs
            shutil.rmtree(directory, ignore_errors=True)
