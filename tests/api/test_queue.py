"""When every run slot is busy: a bounded wait, then 429; heavy runs take several slots."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from falcon import testing

from snekbox.api import create_app
from snekbox.services.settings import ApiSettings
from snekbox.services.slots import NoSlotAvailableError, RunSlots
from tests.api.conftest import FakeRunner, start_slot_holder

MiB = 1024**2


@pytest.mark.parametrize("lock_dir", [False, True])
def test_weighted_acquire_is_all_or_nothing(tmp_path: Path, lock_dir: bool) -> None:
    slots = RunSlots(4, tmp_path if lock_dir else None)
    held = slots.acquire_many(3)
    with pytest.raises(NoSlotAvailableError):
        slots.acquire_many(2, timeout=0.05)
    assert slots.held == 3  # the failed attempt kept nothing
    one = slots.acquire_many(1, timeout=0)
    slots.release_many(held)
    with slots.slot(timeout=0, weight=3) as taken:
        assert len(set(taken) | set(one)) == 4
    slots.release_many(one)
    assert slots.held == 0


def test_weight_above_the_count_takes_every_slot(tmp_path: Path) -> None:
    slots = RunSlots(2, tmp_path)
    with slots.slot(timeout=0, weight=9) as taken:
        assert sorted(taken) == [0, 1]
        with pytest.raises(NoSlotAvailableError):
            slots.acquire(timeout=0)


def test_a_heavy_waiter_gets_its_slots_once_they_free_up() -> None:
    slots = RunSlots(3)
    first = slots.acquire()
    second = slots.acquire()
    got: list[list[int]] = []
    waiter = threading.Thread(target=lambda: got.append(slots.acquire_many(3, timeout=5)))
    waiter.start()
    time.sleep(0.05)
    slots.release(first)
    time.sleep(0.05)
    assert got == []  # two free is not enough
    slots.release(second)
    waiter.join(5)
    assert sorted(got[0]) == [0, 1, 2]


def test_weights_count_across_processes(tmp_path: Path) -> None:
    other = start_slot_holder(tmp_path, total=3, weight=2, seconds=0.5)
    try:
        slots = RunSlots(3, tmp_path)
        with slots.slot(timeout=0):  # the third slot is free
            pass
        with pytest.raises(NoSlotAvailableError):
            slots.acquire_many(2, timeout=0.1)
        with slots.slot(timeout=5, weight=2):
            pass
    finally:
        other.join(5)


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
