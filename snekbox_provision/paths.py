"""Path tests and permission helpers that several steps share."""

from __future__ import annotations

import os
import stat
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The checkout (or the image's /snekbox): eval-deps.pip's default place, cgroups' cwd."""


def is_within(path: Path, root: Path) -> bool:
    """Whether `path` is `root` or below it, lexically (no symlinks resolved)."""
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def make_root_dir(path: Path) -> None:
    """A directory (and its parents) that the sandbox user can traverse."""
    path.mkdir(parents=True, exist_ok=True)
    add_mode(path, 0o755)


def make_world_readable(root: Path) -> None:
    """The jail runs as nobody: every file must be readable and every directory searchable."""
    for directory, _dirnames, filenames in os.walk(root):
        add_mode(Path(directory), 0o755)
        for name in filenames:
            path = Path(directory, name)
            if path.is_symlink():
                continue
            mode = path.stat().st_mode
            add_mode(path, 0o555 if mode & stat.S_IXUSR else 0o444)


def add_mode(path: Path, bits: int) -> None:
    """Add permission bits, touching the inode only when some are missing."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & bits != bits:
        path.chmod(mode | bits)
