"""Thin wrappers over mount(2)/umount2(2) and byte-size units for the memfs.

ctypes is used instead of spawning ``mount``/``umount`` so that each run costs two syscalls
rather than two processes, and so that errors arrive as ``OSError`` with the kernel's reason
(``OSError``'s constructor turns the errno into its subclass, e.g. ``BlockingIOError``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import operator
import os
from collections.abc import Iterable
from enum import IntEnum, IntFlag
from pathlib import Path

__all__ = ("MountFlag", "Size", "UnmountFlags", "mount", "unmount")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = (
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)


class MountFlag(IntEnum):
    """mount(2) flags that are not part of a file system's ``data`` options."""

    NOSUID = 2
    NODEV = 4
    NOEXEC = 8


class UnmountFlags(IntFlag):
    """umount2(2) flags, with the kernel's names and values."""

    MNT_FORCE = 1
    MNT_DETACH = 2
    MNT_EXPIRE = 4
    UMOUNT_NOFOLLOW = 8


class Size(IntEnum):
    """Binary size units, so limits read as ``48 * Size.MiB`` instead of bare numbers."""

    B = 1
    KiB = 1024
    MiB = 1024**2
    GiB = 1024**3
    TiB = 1024**4


def _os_error(code: int, action: str, target: str | Path) -> OSError:
    """An ``OSError`` (of the errno's subclass) whose text ends with the kernel's reason."""
    return OSError(code, f"Failed to {action} {target}: {os.strerror(code)}")


def mount(
    source: str | Path,
    target: str | Path,
    fs: str,
    *,
    flags: Iterable[MountFlag] = (),
    **options: str | int,
) -> None:
    """Mount ``source`` of type ``fs`` at ``target``; ``options`` become ``key=value`` data.

    Mounting over an existing mount point is refused: the kernel would stack a second mount
    that hides the first, and the memfs must never lose track of a mount it made.
    """
    if os.path.ismount(target):
        raise OSError(errno.EBUSY, f"Failed to mount {fs} at {target}: already a mount point")
    data = ",".join(f"{key}={value}" for key, value in options.items())
    result = _libc.mount(
        os.fsencode(source),
        os.fsencode(target),
        fs.encode(),
        functools.reduce(operator.or_, flags, 0),
        data.encode() or None,
    )
    if result != 0:
        raise _os_error(ctypes.get_errno(), f"mount {fs} at", target)


def unmount(target: str | Path, flags: UnmountFlags | int = UnmountFlags.MNT_DETACH) -> None:
    """Unmount ``target``; the directory itself stays.

    The default detaches lazily: the tmpfs is freed once its last user is gone, and the mount
    point disappears at once. A busy mount is routine: a jail started at the same moment by
    another request holds a copy of every host mount until NsJail has pivoted into its root.
    """
    if not os.path.ismount(target):  # a missing path is not a mount point either
        raise OSError(errno.EINVAL, f"Failed to unmount {target}: it is not a mount point")
    if _libc.umount2(os.fsencode(target), int(flags)) != 0:
        raise _os_error(ctypes.get_errno(), "unmount", target)
