"""``snekbox.limits.timed.time_limit`` interrupts its block in the main thread."""

from __future__ import annotations

import math
import threading
import time

import pytest

from snekbox.limits.timed import time_limit


def test_a_sleep_is_interrupted_in_well_under_its_length() -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError), time_limit(1):
        time.sleep(2)
    assert time.monotonic() - started < 1.5


def test_a_long_builtin_computation_is_interrupted() -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError), time_limit(1):
        math.factorial(2**30)
    assert time.monotonic() - started < 1.9


def test_a_block_within_its_limit_completes_and_leaves_no_timer() -> None:
    with time_limit(1):
        pass
    time.sleep(1.2)  # no SIGALRM arrives later


def test_in_another_thread_the_deadline_is_cooperative() -> None:
    outcome: list[str] = []

    def work() -> None:
        try:
            with time_limit(0.1, "too slow") as deadline:
                time.sleep(0.2)
                deadline.check()
        except TimeoutError as error:
            outcome.append(str(error))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert outcome == ["too slow"]


def test_time_limit_raises_after_deadline() -> None:
    with pytest.raises(TimeoutError, match="too slow"), time_limit(0.01, "too slow") as deadline:
        time.sleep(0.02)
        deadline.check()
