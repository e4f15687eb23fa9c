"""The names the jail runs: `<prefix>/bin/python` and `/snekbin/python/default`."""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path

from snekbox import layout
from snekbox_provision import ProvisionError
from snekbox_provision.interpreters import (
    installed_interpreters,
    python_binaries,
    python_executable,
    python_root,
    version_sort_key,
)

log = logging.getLogger(__name__)


def ensure_python_link(prefix: Path) -> None:
    """Give an install (e.g. a --prefix build) the bin/python name the jail runs."""
    link = python_executable(prefix)
    if os.path.lexists(link):
        return
    names = python_binaries(prefix)
    target = "python3" if "python3" in names else next(iter(names), None)
    if target is None:
        raise ProvisionError(f"{prefix}/bin has no python3 executable")
    log.info("linking %s -> %s", link, target)
    link.symlink_to(target)


def default_target(snekbin: Path, requested: str | None) -> str:
    """The interpreter directory `default` should name: the requested one or the newest X.Y."""
    names = [path.name for path in installed_interpreters(snekbin)]
    if requested is not None:
        if requested not in names:
            raise ProvisionError(
                f"--default {requested}: no interpreter at {python_root(snekbin) / requested}"
                f" (have: {', '.join(names) or 'none'})"
            )
        return requested
    plain = [name for name in names if re.fullmatch(r"\d+\.\d+", name)]
    if not plain:
        raise ProvisionError(f"no X.Y interpreter under {python_root(snekbin)} to make the default")
    return max(plain, key=version_sort_key)


def default_link(snekbin: Path) -> Path:
    """SNEKBIN/python/default, the interpreter a request without executable_path gets."""
    return python_root(snekbin) / layout.DEFAULT_INTERPRETER


def check_default(snekbin: Path, target: str) -> list[str]:
    """Report a missing or wrong default link."""
    link = default_link(snekbin)
    if link.is_symlink():
        current = os.readlink(link)
        if current != target:
            return [f"{link} points to {current}, expected {target}"]
        return []
    if link.is_dir():
        return []  # A real install named default (an image may do this); leave it be.
    return [f"{link} is missing"]


def set_default(snekbin: Path, target: str) -> None:
    """Point /snekbin/python/default at `target` with a relative link, atomically."""
    link = default_link(snekbin)
    if not check_default(snekbin, target):
        return
    if link.exists() and not link.is_symlink():
        log.warning("%s is a real directory; leaving it as the default", link)
        return
    staging = link.with_name(f".default-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        staging.unlink()
    staging.symlink_to(target)
    staging.replace(link)
    log.info("default interpreter: %s -> %s", link, target)
