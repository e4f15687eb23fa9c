"""One directory per owning process under the memfs root, so every mount names its owner.

A run's tmpfs is mounted at ``<memfs root>/<owner>/<id>`` (see ``snekbox.ownership``), which
lets a sweeper attribute a mount left by a killed worker to that worker from its path alone.
The directory exists only while the process has runs in flight, so an idle server leaves the
memfs root empty. When the memfs root itself has vanished (an operator cleaned up by hand), it
is made again as provisioning makes it, rather than failing every run from then on.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from snekbox import layout
from snekbox.ownership import Owner
from snekbox.snekio import filesystem

__all__ = ("MEMFS_ROOT_MODE", "owner_memfs_dir", "remove_owner_mounts")

log = logging.getLogger(__name__)

MEMFS_ROOT_MODE = layout.MEMFS_ROOT_MODE
"""The memfs root as provisioning makes it: root's, searchable by the jail's user namespace."""

RECORD_KIND = "memfs"
"""How an owner's file names a memfs root it mounts under (see ``Owner.record``)."""

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")

_lock = threading.Lock()
_users: Counter[Path] = Counter()
_pid = os.getpid()


@contextmanager
def owner_memfs_dir(owner: Owner, memfs_root: Path) -> Iterator[Path]:
    """Hold ``<memfs_root>/<owner>`` for one run: made by the first run, removed by the last."""
    global _pid
    directory = memfs_root / owner.name
    owner.record(RECORD_KIND, memfs_root)
    with _lock:
        if _pid != os.getpid():  # a forked child inherits no runs
            _users.clear()
            _pid = os.getpid()
        _make(directory)
        _users[directory] += 1
        owner.runs_in_flight += 1
    try:
        yield directory
    finally:
        with _lock:
            owner.runs_in_flight -= 1
            _users[directory] -= 1
            if _users[directory] == 0:
                del _users[directory]
                try:
                    directory.rmdir()
                except OSError as e:
                    log.warning("Could not remove the memfs directory %s: %s", directory, e)


def _make(directory: Path) -> None:
    try:
        directory.mkdir(mode=MEMFS_ROOT_MODE, exist_ok=True)
    except FileNotFoundError:
        root = directory.parent
        log.warning("The memfs root %s has vanished; making it again.", root)
        root.mkdir(mode=MEMFS_ROOT_MODE, parents=True, exist_ok=True)
        os.chmod(root, MEMFS_ROOT_MODE)  # whatever the umask
        directory.mkdir(mode=MEMFS_ROOT_MODE, exist_ok=True)
    os.chmod(directory, MEMFS_ROOT_MODE)


def _mount_points_under(directory: Path) -> list[Path]:
    """Mount points strictly below ``directory``, deepest first."""
    prefix = f"{directory}/"
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        # Field 5 is the mount point, with space, tab, newline and backslash octal-escaped.
        point = _OCTAL_ESCAPE.sub(lambda m: chr(int(m[1], 8)), line.split()[4])
        if point.startswith(prefix):
            found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def remove_owner_mounts(memfs_root: Path, owner_name: str) -> bool:
    """Unmount and remove everything a dead owner left under ``memfs_root``; True when done.

    Only empty directories are removed: once the mounts are gone nothing else should be there,
    and a recursive delete is never run over a path that might still hold a mount.
    """
    directory = memfs_root / owner_name
    done = True
    for point in _mount_points_under(directory):
        try:
            filesystem.unmount(point)
            log.warning("Unmounted the leftover memfs %s", point)
        except OSError as e:
            log.error("Could not unmount the leftover memfs %s: %s", point, e)
            done = False
    if not directory.is_dir():
        return done
    for child in directory.iterdir():
        try:
            child.rmdir()
        except OSError as e:
            log.error("Could not remove the leftover memfs directory %s: %s", child, e)
            done = False
    try:
        directory.rmdir()
    except OSError as e:
        log.error("Could not remove the leftover memfs directory %s: %s", directory, e)
        done = False
    return done
