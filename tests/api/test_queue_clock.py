"""The queue clock starts when the request's head arrived, not when the app first saw it."""

from __future__ import annotations

import threading
import time

from falcon import testing

from snekbox.api import create_app
from snekbox.services.settings import ApiSettings
from snekbox.services.slots import ARRIVED_ENVIRON_KEY, time_since_arrival
from tests.api.conftest import FakeRunner


def busy_server(
    runner: FakeRunner, queue_timeout: float
) -> tuple[testing.TestClient, threading.Event]:
    """One slot, held by a run that lasts until the returned event is set."""
    client = testing.TestClient(
        create_app(runner, ApiSettings(1, 64 * 1024, 5, queue_timeout=queue_timeout))
    )
    release = threading.Event()
    runner.hook = lambda: release.wait(5)  # type: ignore[func-returns-value]
    threading.Thread(target=lambda: client.simulate_post("/eval", json={"input": "1"})).start()
    time.sleep(0.1)
    return client, release


def test_time_waited_for_a_thread_is_taken_off_the_slot_wait(runner: FakeRunner) -> None:
    client, release = busy_server(runner, queue_timeout=1.0)
    try:
        start = time.monotonic()
        response = client.simulate_post(
            "/eval",
            json={"input": "2"},
            extras={ARRIVED_ENVIRON_KEY: time.monotonic() - 0.8},
        )
        waited = time.monotonic() - start
    finally:
        release.set()
    assert response.status_code == 429
    assert waited < 0.5, f"waited {waited:.2f} s of a 1 s timeout already 0.8 s spent"


def test_a_request_past_its_queue_time_still_gets_a_free_slot(runner: FakeRunner) -> None:
    client = testing.TestClient(create_app(runner, ApiSettings(1, 64 * 1024, 5, queue_timeout=1.0)))
    response = client.simulate_post(
        "/eval", json={"input": "2"}, extras={ARRIVED_ENVIRON_KEY: time.monotonic() - 5}
    )
    assert response.status_code == 200


def test_without_a_stamp_the_request_arrived_now() -> None:
    """Gunicorn's own workers (and the original's sync config) set no stamp."""
    assert time_since_arrival({}) == 0.0
    assert time_since_arrival({ARRIVED_ENVIRON_KEY: "yesterday"}) == 0.0
    assert time_since_arrival({ARRIVED_ENVIRON_KEY: time.monotonic() + 9}) == 0.0
    assert 1.9 < time_since_arrival({ARRIVED_ENVIRON_KEY: time.monotonic() - 2}) < 3
