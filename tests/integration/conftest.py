"""Fixtures for integration tests: one real Gunicorn for the session (see tests.support.server).

The server runs real NsJail sandboxes, so these tests need root and a provisioned host
(`make setup`). They fail, never skip, when either is missing: an API that was not tested
against real sandboxes is not known to work.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.server import Server, running_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One Gunicorn for the whole session, as deployed apart from the port."""
    with running_server(tmp_path_factory.mktemp("gunicorn") / "server.log") as running:
        yield running
