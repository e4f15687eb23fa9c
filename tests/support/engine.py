"""Helpers for tests that run real jails: what a run is, and what it may leave behind."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from snekbox.nsjail import NsJail
from snekbox.result import EvalResult

RunCode = Callable[..., EvalResult]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def plain(text: str) -> str:
    """``text`` without ANSI colour codes (PYTHON_COLORS=1 colours tracebacks on 3.13+)."""
    return _ANSI.sub("", text)


def memfs_mounts() -> list[str]:
    """Mount points under the memfs root currently mounted on the host."""
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    return [line.split()[1] for line in mounts if line.split()[1].startswith("/memfs/")]


def run_cgroups(nsjail: NsJail) -> list[Path]:
    """Per-run cgroups that still exist below the parents."""
    return nsjail.cgroups.run_cgroups()


def nsjail_processes() -> list[int]:
    """Pids of running ``nsjail`` processes."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "comm").read_text().strip() == "nsjail":
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def provisioned_interpreters() -> list[str]:
    """Every interpreter under /snekbin/python (the default link resolves to one of them)."""
    found = sorted(
        str(path / "bin" / "python")
        for path in Path("/snekbin/python").iterdir()
        if path.name != "default" and (path / "bin" / "python").exists()
    )
    if not found:
        raise RuntimeError("No interpreter under /snekbin/python: run `make setup` first")
    return found
