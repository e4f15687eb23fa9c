"""The run-slot cap: within a process, across processes, and after a holder dies."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from falcon import testing

from snekbox.api import create_app
from snekbox.services.settings import ApiSettings
from snekbox.services.slots import NoSlotAvailableError, RunSlots
from tests.api.conftest import FakeRunner, start_slot_holder


def peak_concurrency(slots: RunSlots, threads: int, hold: float = 0.05) -> int:
    """Run `threads` threads that each hold a slot for `hold` s; return the most held at once."""
    current = peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal current, peak
        with slots.slot():
            with lock:
                current += 1
                peak = max(peak, current)
            time.sleep(hold)
            with lock:
                current -= 1

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return peak


@pytest.mark.parametrize("lock_dir", [False, True])
def test_threads_never_exceed_the_cap(tmp_path: Path, lock_dir: bool) -> None:
    slots = RunSlots(3, tmp_path if lock_dir else None)
    assert peak_concurrency(slots, 12) == 3
    assert slots.held == 0


def test_all_slots_are_used_in_parallel(tmp_path: Path) -> None:
    slots = RunSlots(8, tmp_path)
    start = time.monotonic()
    assert peak_concurrency(slots, 8, hold=0.3) == 8
    assert time.monotonic() - start < 0.6


def test_timeout_when_all_slots_stay_busy(tmp_path: Path) -> None:
    slots = RunSlots(1, tmp_path)
    with slots.slot():
        start = time.monotonic()
        with pytest.raises(NoSlotAvailableError, match=r"within 0\.2 s"):
            slots.acquire(timeout=0.2)
        assert 0.2 <= time.monotonic() - start < 0.5
    with slots.slot(timeout=0):
        pass


def test_at_least_one_slot() -> None:
    with pytest.raises(ValueError, match="at least one"):
        RunSlots(0)


def test_slots_are_shared_between_processes(tmp_path: Path) -> None:
    other = start_slot_holder(tmp_path, total=1, weight=1, seconds=0.5)
    try:
        slots = RunSlots(1, tmp_path)
        with pytest.raises(NoSlotAvailableError):
            slots.acquire(timeout=0.1)
        start = time.monotonic()
        with slots.slot(timeout=5):
            waited = time.monotonic() - start
        assert 0.2 < waited < 1.0  # freed when the other process let go, noticed by polling
    finally:
        other.join(5)


def test_a_dead_holder_frees_its_slot(tmp_path: Path) -> None:
    other = start_slot_holder(tmp_path, total=1, weight=1, seconds=60)
    assert other.pid is not None
    os.kill(other.pid, signal.SIGKILL)
    other.join(5)
    with RunSlots(1, tmp_path).slot(timeout=1):
        pass


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
