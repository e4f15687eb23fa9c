"""The limits table: NsJail options taken out, defaults merged with overrides."""

from __future__ import annotations

from snekbox.limits.table import EvalLimits, merge, parse_nsjail_options


def test_limit_options_are_taken_out_of_nsjail_args() -> None:
    found, swap, rest = parse_nsjail_options(
        ["--time_limit", "2", "--cgroup_mem_max=1000", "-v", "--cgroup_pids_max", "5", "-t", "3",
         "--cgroup_mem_swap_max", "0"]
    )  # fmt: skip
    assert found == EvalLimits(time=3, memory=1000, pids=5)
    assert (swap, rest) == (0, ["-v"])


def test_limits_merge_over_defaults_in_order() -> None:
    defaults = EvalLimits(time=6, memory=70, pids=15, output_size=100)
    merged = merge(defaults, EvalLimits(time=2, memory=80), None, EvalLimits(time=3))
    assert merged == EvalLimits(time=3, memory=80, pids=15, output_size=100)
