"""The verdict: a run's status decided from facts."""

from __future__ import annotations

import pytest

from snekbox.limits.run_cgroup import CgroupStats
from snekbox.nsjail import (
    decide_status,
)


@pytest.mark.parametrize(
    ("returncode", "truncated", "log", "stats", "status"),
    [
        (None, False, [], CgroupStats(None, 0, 0), "failed"),
        (143, True, [], CgroupStats(None, 0, 0), "output_limit"),
        (0, False, [], CgroupStats(None, 1, 0), "ok"),
        (137, False, ["pid=3 run time >= time limit (6 >= 6)"], CgroupStats(1, 0, 0), "timed_out"),
        (137, False, [], CgroupStats(70 << 20, 1, 0), "out_of_memory"),
        (137, False, [], CgroupStats(70 << 20, 0, 0, memory_limit_reached=True), "out_of_memory"),
        (1, False, [], CgroupStats(70 << 20, 0, 0, memory_limit_reached=True), "error"),
        (1, False, [], CgroupStats(1, 0, 3), "pids_limit"),
        (1, False, [], CgroupStats(1, 0, 0, pids_limit_reached=True), "pids_limit"),
        (139, False, [], CgroupStats(1, 0, 0), "signaled"),
        (255, False, [], CgroupStats(1, 0, 0), "error"),
        (2, False, [], CgroupStats(1, 0, 0), "error"),
    ],
)
def test_status_is_decided_from_facts(returncode, truncated, log, stats, status) -> None:
    assert decide_status(returncode, truncated, log, stats) == status
