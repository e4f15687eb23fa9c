"""Fixtures for engine tests: a real NsJail on this host, and checks that nothing leaks.

These tests need root, a provisioned host (``make setup``) and working cgroups; they fail,
never skip, when any of that is missing, because a sandbox that was not tested is not safe.
Helpers live in ``tests.support.engine``.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator

import pytest

from snekbox.nsjail import NsJail
from snekbox.result import EvalResult
from snekbox.snekio import FileAttachment
from tests.support.engine import (
    POOL_MODES,
    RunCode,
    leftovers,
    pooled_engine,
    provisioned_interpreters,
)


def pytest_configure(config: pytest.Config) -> None:
    if os.geteuid() != 0:
        raise pytest.UsageError(
            "The engine tests run real NsJail jails and need root (namespaces, mounts, "
            "cgroups): run them with sudo, e.g. `sudo make test`."
        )


@pytest.fixture(scope="session", params=POOL_MODES)
def nsjail(request: pytest.FixtureRequest) -> Iterator[NsJail]:
    """One NsJail shared by the session, as one server process shares it between requests.

    Every engine test runs twice: with every run in a fresh jail, and with a pool of
    pre-started jails that each eligible run takes (see ``tests.support.engine``).
    """
    if request.param == "cold":
        yield NsJail()
        return
    engine = pooled_engine()
    yield engine
    assert engine.pool is not None
    engine.pool.close()


@pytest.fixture
def run(nsjail: NsJail) -> RunCode:
    """Run dedented code with ``-c`` (extra keyword arguments go to ``python3``)."""

    def run_code(code: str, *, files: tuple[FileAttachment, ...] = (), **kwargs) -> EvalResult:
        return nsjail.python3(["-c", textwrap.dedent(code)], files=files, **kwargs)

    return run_code


@pytest.fixture
def no_leftovers(nsjail: NsJail) -> Iterator[None]:
    """Assert that the test left no memfs mount, memfs directory, cgroup or NsJail behind."""
    yield
    assert leftovers(nsjail) == {}


@pytest.fixture(params=provisioned_interpreters())
def interpreter(request: pytest.FixtureRequest) -> str:
    """Each provisioned interpreter's executable path in turn."""
    return request.param
