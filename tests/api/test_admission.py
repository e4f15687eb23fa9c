"""Admission to /eval: a run waits for its slots within the queue timeout, then 429.

Heavy runs take several slots; the queue clock starts when the request's head arrived.
"""

from __future__ import annotations

import threading
import time

from falcon import testing

from snekbox.api import create_app
from snekbox.services.settings import ApiSettings
from snekbox.services.slots import ARRIVED_ENVIRON_KEY, time_since_arrival
from tests.support.api import FakeRunner

MiB = 1024**2


def full_server(runner: FakeRunner, slots: int, queue_timeout: float) -> testing.TestClient:
    settings = ApiSettings(slots, 64 * 1024, 5, queue_timeout=queue_timeout)
    return testing.TestClient(create_app(runner, settings))


def hold_runs(runner: FakeRunner, seconds: float) -> threading.Event:
    """Make every run wait until the returned event is set (or `seconds` pass)."""
    release = threading.Event()
    runner.hook = lambda: release.wait(seconds)  # type: ignore[func-returns-value]
    return release


def post_in_background(
    client: testing.TestClient, body: dict, results: list[testing.Result]
) -> threading.Thread:
    thread = threading.Thread(
        target=lambda: results.append(client.simulate_post("/eval", json=body))
    )
    thread.start()
    return thread


def test_full_server_answers_429_after_the_queue_timeout(runner: FakeRunner) -> None:
    client = full_server(runner, slots=1, queue_timeout=0.3)
    release = hold_runs(runner, 5)
    results: list[testing.Result] = []
    busy = post_in_background(client, {"input": "1"}, results)
    time.sleep(0.1)
    start = time.monotonic()
    response = client.simulate_post("/eval", json={"input": "2"})
    waited = time.monotonic() - start
    release.set()
    busy.join(5)

    assert response.status_code == 429
    assert 0.3 <= waited < 1.0
    assert response.headers["Retry-After"] == "6"  # the config's default time limit
    assert response.headers["Content-Type"] == "application/json"
    assert response.json == {
        "title": "429 Too Many Requests",
        "description": "No sandbox slot became free within 0.3 seconds (this server runs 1 at "
        "once); retry after 6 seconds.",
    }
    assert results[0].status_code == 200
    assert len(runner.calls) == 1  # the refused request never reached the engine


def test_a_slot_freed_within_the_timeout_is_used(runner: FakeRunner) -> None:
    client = full_server(runner, slots=1, queue_timeout=2)
    release = hold_runs(runner, 5)
    results: list[testing.Result] = []
    busy = post_in_background(client, {"input": "1"}, results)
    time.sleep(0.1)
    threading.Timer(0.3, release.set).start()
    response = client.simulate_post("/eval", json={"input": "2"})
    busy.join(5)
    assert response.status_code == 200
    assert results[0].status_code == 200


def test_a_heavy_request_takes_several_slots(runner: FakeRunner) -> None:
    """With 3 slots, a 200 MiB run (2 slots' worth) leaves room for one default run only."""
    client = full_server(runner, slots=3, queue_timeout=0.3)
    release = hold_runs(runner, 5)
    results: list[testing.Result] = []
    threads = [
        post_in_background(client, {"input": "1", "limits": {"memory": 200 * MiB}}, results),
        post_in_background(client, {"input": "2"}, results),
    ]
    time.sleep(0.1)
    refused = client.simulate_post("/eval", json={"input": "3"})
    release.set()
    for thread in threads:
        thread.join(5)
    assert refused.status_code == 429
    assert [r.status_code for r in results] == [200, 200]


def test_a_failing_run_gives_its_slots_back(runner: FakeRunner) -> None:
    runner.error = RuntimeError("engine bug")
    client = full_server(runner, slots=1, queue_timeout=0.2)
    assert client.simulate_post("/eval", json={"input": "1"}).status_code == 500
    runner.error = None
    assert client.simulate_post("/eval", json={"input": "1"}).status_code == 200


def test_eval_waits_for_a_slot(runner: FakeRunner) -> None:
    """With one slot, concurrent requests run one after another, never together."""
    running = 0
    peak = 0
    lock = threading.Lock()

    def slow_run() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    runner.hook = slow_run
    settings = ApiSettings(max_concurrent_runs=1, max_body_size=1024, body_timeout=5)
    client = testing.TestClient(create_app(runner, settings))
    results: list[int] = []

    def post() -> None:
        results.append(client.simulate_post("/eval", json={"input": ""}).status_code)

    threads = [threading.Thread(target=post) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 5
    assert peak == 1


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
