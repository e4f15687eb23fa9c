"""Helpers for tests that run real jails: what a run is, and what it may leave behind."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from snekbox.jail_config import DEFAULT_EXECUTABLE_PATH
from snekbox.nsjail import NsJail
from snekbox.pool import PoolSettings, live_pools
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


POOL_MODES = ("cold", "pool")
"""How the engine suites run: every run in a fresh jail, or in a pre-started one."""
POOL_READY_TIMEOUT = 60.0


def suite_pool_settings() -> PoolSettings:
    """One waiting jail per provisioned interpreter and for the default link."""
    sizes = {DEFAULT_EXECUTABLE_PATH: 1} | dict.fromkeys(provisioned_interpreters(), 1)
    return PoolSettings(sizes, idle_age=600.0, max_time=30)


class SettledPoolNsJail(NsJail):
    """An engine whose runs always find a waiting jail when they can take one.

    Before each run it waits until the pool holds a jail for the run's interpreter, so in the
    pooled suites an eligible run takes the pooled path every time, not only when the refill
    happened to keep up with the test.
    """

    def python3(self, py_args: Sequence[str], *args: Any, **kwargs: Any) -> EvalResult:
        assert self.pool is not None, "start the pool first"
        executable = kwargs.get("executable_path", args[2] if len(args) > 2 else None)
        ready = self.pool.wait_full(POOL_READY_TIMEOUT, executable or DEFAULT_EXECUTABLE_PATH)
        assert ready, "the pool did not fill"
        return super().python3(py_args, *args, **kwargs)


def pooled_engine(**kwargs: Any) -> SettledPoolNsJail:
    """A `SettledPoolNsJail` with `suite_pool_settings`, already full."""
    engine = SettledPoolNsJail(**kwargs)
    pool = engine.start_pool(suite_pool_settings())
    assert pool.wait_full(POOL_READY_TIMEOUT), "the pool did not fill"
    return engine


def leftovers(nsjail: NsJail) -> dict[str, list[Any]]:
    """What runs left on the host (empty when nothing), apart from waiting jails of live pools.

    Each pool is first let settle, so no jail is half-started while the host is looked at.
    """
    held_mounts: set[str] = set()
    held_cgroups: set[Path] = set()
    held_pids: set[int] = set()
    for pool in live_pools():  # this engine's, and any other engine's of this process
        assert pool.wait_full(POOL_READY_TIMEOUT), "the pool did not settle"
        for jail in pool.jails():
            held_mounts.add(str(jail.sandbox.memfs.path))
            held_cgroups.update({jail.sandbox.cgroup.memory, jail.sandbox.cgroup.pids})
            held_pids.add(jail.process.pid)
    entries = []
    for entry in nsjail.memfs_root.iterdir():
        inside = [str(child) for child in entry.iterdir()] if entry.is_dir() else []
        if not inside or set(inside) - held_mounts:
            entries.append(str(entry))
    found = {
        "mounts": [mount for mount in memfs_mounts() if mount not in held_mounts],
        "memfs entries": entries,
        "cgroups": [path for path in run_cgroups(nsjail) if path not in held_cgroups],
        "processes": [pid for pid in nsjail_processes() if pid not in held_pids],
    }
    return {kind: items for kind, items in found.items() if items}
