"""Fixtures for integration tests: one real Gunicorn for the session (see tests.support.server).

The server runs real NsJail sandboxes, so these tests need root and a provisioned host
(`make setup`). They fail, never skip, when either is missing: an API that was not tested
against real sandboxes is not known to work.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.engine import POOL_MODES
from tests.support.server import Server, running_server


@pytest.fixture(scope="session", params=POOL_MODES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One Gunicorn per pool mode for the whole session, as deployed apart from the port.

    Every test that uses it runs twice: with the pre-started jails off and on (the default).
    """
    log_path = tmp_path_factory.mktemp(f"gunicorn-{request.param}") / "server.log"
    pool = "on" if request.param == "pool" else "off"
    with running_server(log_path, SNEKBOX_POOL=pool) as running:
        yield running
