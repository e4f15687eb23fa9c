"""Fixtures for API unit tests: the real app around a fake runner, so no sandbox is needed.

Stand-ins live in ``tests.support.api``.
"""

from __future__ import annotations

import pytest
from falcon import testing

from snekbox.api import create_app
from snekbox.services.settings import ApiSettings
from tests.support.api import SMALL_BODY_LIMIT, FakeRunner


@pytest.fixture
def runner() -> FakeRunner:
    return FakeRunner()


@pytest.fixture
def settings() -> ApiSettings:
    return ApiSettings(max_concurrent_runs=4, max_body_size=SMALL_BODY_LIMIT, body_timeout=5)


@pytest.fixture
def client(runner: FakeRunner, settings: ApiSettings) -> testing.TestClient:
    return testing.TestClient(create_app(runner, settings))
