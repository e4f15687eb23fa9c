"""Fixtures for engine tests: a real NsJail on this host, and checks that nothing leaks.

These tests need root, a provisioned host (``make setup``) and working cgroups; they fail,
never skip, when any of that is missing, because a sandbox that was not tested is not safe.
"""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from snekbox.nsjail import NsJail
from snekbox.result import EvalResult
from snekbox.snekio import FileAttachment

RunCode = Callable[..., EvalResult]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def plain(text: str) -> str:
    """``text`` without ANSI colour codes (PYTHON_COLORS=1 colours tracebacks on 3.13+)."""
    return _ANSI.sub("", text)


def pytest_configure(config: pytest.Config) -> None:
    if os.geteuid() != 0:
        raise pytest.UsageError(
            "The engine tests run real NsJail jails and need root (namespaces, mounts, "
            "cgroups): run them with sudo, e.g. `sudo make test`."
        )


@pytest.fixture(scope="session")
def nsjail() -> NsJail:
    """One NsJail shared by the session, as one server process shares it between requests."""
    return NsJail()


@pytest.fixture
def run(nsjail: NsJail) -> RunCode:
    """Run dedented code with ``-c`` (extra keyword arguments go to ``python3``)."""

    def run_code(code: str, *, files: tuple[FileAttachment, ...] = (), **kwargs) -> EvalResult:
        return nsjail.python3(["-c", textwrap.dedent(code)], files=files, **kwargs)

    return run_code


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


@pytest.fixture
def no_leftovers(nsjail: NsJail) -> Iterator[None]:
    """Assert that the test left no memfs mount, memfs directory, cgroup or NsJail behind."""
    yield
    assert memfs_mounts() == []
    assert list(nsjail.memfs_root.iterdir()) == []
    assert run_cgroups(nsjail) == []
    assert nsjail_processes() == []


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


@pytest.fixture(params=provisioned_interpreters())
def interpreter(request: pytest.FixtureRequest) -> str:
    """Each provisioned interpreter's executable path in turn."""
    return request.param
