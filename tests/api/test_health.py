"""GET /health: a real (here: fake) run decides; results are cached and probes never pile up."""

from __future__ import annotations

import threading
import time

from falcon import testing

from snekbox.limits.table import EvalLimits
from snekbox.result import EvalResult
from snekbox.services.health import HealthCheck, HealthError, sandbox_probe
from tests.support.api import FakeRunner


class Clock:
    """A hand-driven monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_healthy_when_the_trivial_run_answers(
    client: testing.TestClient, runner: FakeRunner
) -> None:
    runner.result = EvalResult([], 0, "42\n")
    response = client.simulate_get("/health")
    assert response.status_code == 200
    assert response.json["status"] == "ok"
    assert set(response.json) == {"status", "duration", "age"}
    call = runner.calls[0]
    assert call["py_args"] == ["-c", "print(6 * 7)"]
    assert call["limits"] == EvalLimits(time=2)


def test_unhealthy_when_the_run_fails(client: testing.TestClient, runner: FakeRunner) -> None:
    runner.result = EvalResult.failed([], "OSError: could not prepare the sandbox")
    response = client.simulate_get("/health")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json == {
        "title": "The sandbox is not working",
        "description": "The server cannot run code: the sandbox could not start: "
        "OSError: could not prepare the sandbox.",
    }


def test_unhealthy_when_the_output_is_wrong(client: testing.TestClient, runner: FakeRunner) -> None:
    runner.result = EvalResult([], 255, "nsjail: boom\n")
    response = client.simulate_get("/health")
    assert response.status_code == 503
    assert "return code 255 (status error)" in response.json["description"]
    assert "'nsjail: boom\\n'" in response.json["description"]


def test_results_are_cached() -> None:
    clock = Clock()
    calls = []
    check = HealthCheck(lambda: calls.append(1), cache_seconds=5, clock=clock)
    assert check.report().healthy
    clock.now += 4.9
    assert check.report().healthy
    assert len(calls) == 1
    clock.now += 0.2
    assert check.report().healthy
    assert len(calls) == 2


def test_failures_are_cached_too_and_recover() -> None:
    clock = Clock()
    outcomes = [HealthError("broken"), None]

    def probe() -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    check = HealthCheck(probe, cache_seconds=5, clock=clock)
    assert check.report().reason == "broken"
    assert check.report().reason == "broken"
    clock.now += 6
    assert check.report().healthy


def test_concurrent_callers_share_one_probe() -> None:
    calls = []
    gate = threading.Event()

    def probe() -> None:
        calls.append(1)
        gate.wait(5)

    check = HealthCheck(probe, deadline=5)
    reports = []
    threads = [threading.Thread(target=lambda: reports.append(check.report())) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.1)
    gate.set()
    for thread in threads:
        thread.join(5)
    assert len(calls) == 1
    assert [r.healthy for r in reports] == [True] * 8


def test_a_hung_probe_is_unhealthy_at_the_deadline_and_not_restarted() -> None:
    calls = []
    gate = threading.Event()

    def probe() -> None:
        calls.append(1)
        gate.wait(10)

    check = HealthCheck(probe, deadline=0.2, cache_seconds=0)
    start = time.monotonic()
    report = check.report()
    assert time.monotonic() - start < 1.0
    assert not report.healthy
    assert report.reason.startswith("a trivial sandbox run did not answer within 0.2 s")
    # Still hung: later checks say so at once instead of starting another sandbox.
    start = time.monotonic()
    assert not check.report().healthy
    assert time.monotonic() - start < 0.1
    assert len(calls) == 1
    gate.set()
    time.sleep(0.1)
    assert check.report().healthy  # the late answer counts once it arrives


def test_an_unexpected_probe_error_is_a_reason_not_a_crash() -> None:
    def probe() -> None:
        raise RuntimeError("no memfs")

    report = HealthCheck(probe).report()
    assert not report.healthy
    assert report.reason == "the health probe failed: RuntimeError: no memfs"


def test_sandbox_probe_accepts_only_the_expected_answer() -> None:
    runner = FakeRunner(result=EvalResult([], 0, "42\n"))
    sandbox_probe(runner)()
    runner.result = EvalResult([], 0, "41\n")
    check = HealthCheck(sandbox_probe(runner))
    assert "output '41\\n', not '42\\n'" in check.report().reason
