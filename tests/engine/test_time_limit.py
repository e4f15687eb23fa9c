"""The wall-time limit is enforced on the host with a monotonic clock: never early, never late."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from snekbox.nsjail import EvalLimits, NsJail


def test_a_run_within_its_limit_is_never_stopped_early(nsjail: NsJail) -> None:
    # NsJail alone counts whole seconds of time() and killed such runs up to a second early.
    code = "import time; time.sleep(0.85); print('done')"
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(lambda _: nsjail.python3(["-c", code], limits=EvalLimits(time=1)), range(12))
        )
    assert [(r.returncode, r.stdout, r.status) for r in results] == [(0, "done\n", "ok")] * 12


def test_a_run_past_its_limit_is_stopped_within_50_ms(nsjail: NsJail) -> None:
    for limit in (1, 2):
        started = time.monotonic()
        result = nsjail.python3(
            ["-c", "import time; time.sleep(30)"], limits=EvalLimits(time=limit)
        )
        elapsed = time.monotonic() - started
        assert (result.returncode, result.status) == (137, "timed_out")
        assert limit <= result.duration < limit + 0.05, result.duration
        assert elapsed < limit + 0.5


def test_output_written_before_the_limit_is_kept(nsjail: NsJail) -> None:
    code = "import time; print('before', flush=True); time.sleep(30)"
    result = nsjail.python3(["-c", code], limits=EvalLimits(time=1))
    assert (result.returncode, result.stdout, result.status) == (137, "before\n", "timed_out")


def test_nsjails_own_limit_is_a_later_backstop(nsjail: NsJail) -> None:
    result = nsjail.python3(["-c", "pass"], limits=EvalLimits(time=3))
    option = result.args.index("--time_limit")
    assert int(result.args[option + 1]) > 3
