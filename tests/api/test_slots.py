"""Run slots: the cap within a process and across processes, weights, and a dead holder."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from snekbox.services.slots import NoSlotAvailableError, RunSlots
from tests.support.api import start_slot_holder


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
            slots.acquire_many(1, timeout=0.2)
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
            slots.acquire_many(1, timeout=0.1)
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
            slots.acquire_many(1, timeout=0)


def test_a_heavy_waiter_gets_its_slots_once_they_free_up() -> None:
    slots = RunSlots(3)
    first = slots.acquire_many(1)
    second = slots.acquire_many(1)
    got: list[list[int]] = []
    waiter = threading.Thread(target=lambda: got.append(slots.acquire_many(3, timeout=5)))
    waiter.start()
    time.sleep(0.05)
    slots.release_many(first)
    time.sleep(0.05)
    assert got == []  # two free is not enough
    slots.release_many(second)
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
