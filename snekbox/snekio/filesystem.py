"""Thin wrappers over mount(2)/umount2(2) and byte-size units for the memfs.

ctypes is used instead of spawning ``mount``/``umount`` so that each run costs two syscalls
rather than two processes, and so that errors arrive as ``OSError`` with the real errno.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import operator
import os
from collections.abc import Iterable
from enum import IntEnum
from errno import EBUSY
from pathlib import Path

__all__ = ("MountFlag", "Size", "mount", "unmount")

log = logging.getLogger(__name__)

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = (
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)

MNT_DETACH = 2


class MountFlag(IntEnum):
    """mount(2) flags that are not part of a file system's ``data`` options."""

    NOSUID = 2
    NODEV = 4
    NOEXEC = 8


class Size(IntEnum):
    """Binary size units, so limits read as ``48 * Size.MiB`` instead of bare numbers."""

    B = 1
    KiB = 1024
    MiB = 1024**2
    GiB = 1024**3
    TiB = 1024**4


def mount(
    source: str | Path,
    target: str | Path,
    fs: str,
    flags: Iterable[MountFlag] = (),
    **options: str | int,
) -> None:
    """Mount ``source`` of type ``fs`` at ``target`` with ``key=value`` data options."""
    data = ",".join(f"{key}={value}" for key, value in options.items())
    result = _libc.mount(
        os.fsencode(source),
        os.fsencode(target),
        fs.encode(),
        functools.reduce(operator.or_, flags, 0),
        data.encode() or None,
    )
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"Failed to mount {fs} at {target}: {os.strerror(errno)}")


def unmount(target: str | Path) -> None:
    """Unmount ``target``, detaching it lazily if something still holds it open.

    A lazy detach still frees the tmpfs once the last user is gone, and it never leaves the
    mount point visible, which is what cleanup after a run needs. "Busy" is routine: a jail
    started at the same moment by another request gets a copy of every host mount in its new
    mount namespace, this one included, until NsJail has pivoted into its own root.
    """
    path = os.fsencode(target)
    if _libc.umount2(path, 0) == 0:
        return
    errno = ctypes.get_errno()
    level = logging.DEBUG if errno == EBUSY else logging.WARNING
    log.log(level, "Unmounting %s failed (%s); detaching it lazily.", target, os.strerror(errno))
    if _libc.umount2(path, MNT_DETACH) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"Failed to unmount {target}: {os.strerror(errno)}")
