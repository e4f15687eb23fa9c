"""GET /metrics in one process (the multi-worker sums are tested against a real Gunicorn)."""

from __future__ import annotations

import threading
import time

import pytest
from falcon import testing
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from snekbox.api import create_app
from snekbox.result import EvalResult
from snekbox.services import metrics
from snekbox.services.settings import ApiSettings
from tests.support.api import FakeRunner


def sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


@pytest.fixture(autouse=True)
def single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)


def test_evals_are_counted_by_status(client: testing.TestClient, runner: FakeRunner) -> None:
    before_ok = sample("snekbox_evals_total", status="ok")
    before_timed_out = sample("snekbox_evals_total", status="timed_out")
    before_count = sample("snekbox_eval_duration_seconds_count")
    before_sum = sample("snekbox_eval_duration_seconds_sum")
    before_waits = sample("snekbox_queue_wait_seconds_count")

    client.simulate_post("/eval", json={"input": "1"})
    runner.result = EvalResult([], 137, "", status="timed_out", duration=6.2)
    client.simulate_post("/eval", json={"input": "while True: pass"})

    assert sample("snekbox_evals_total", status="ok") == before_ok + 1
    assert sample("snekbox_evals_total", status="timed_out") == before_timed_out + 1
    assert sample("snekbox_eval_duration_seconds_count") == before_count + 2
    assert sample("snekbox_eval_duration_seconds_sum") == pytest.approx(before_sum + 6.2)
    assert sample("snekbox_queue_wait_seconds_count") == before_waits + 2


def test_bad_requests_are_not_evals(client: testing.TestClient) -> None:
    before = sample("snekbox_eval_duration_seconds_count")
    client.simulate_post("/eval", json={"args": 400})
    assert sample("snekbox_eval_duration_seconds_count") == before


def test_runs_in_flight_and_rejections(runner: FakeRunner) -> None:
    settings = ApiSettings(1, 64 * 1024, 5, queue_timeout=0.1)
    client = testing.TestClient(create_app(runner, settings))
    assert sample("snekbox_run_slots") == 1
    release = threading.Event()
    runner.hook = lambda: release.wait(5)  # type: ignore[func-returns-value]
    before_rejections = sample("snekbox_queue_rejections_total")
    busy = threading.Thread(target=lambda: client.simulate_post("/eval", json={"input": "1"}))
    busy.start()
    time.sleep(0.05)
    assert sample("snekbox_runs_in_flight") == 1
    assert client.simulate_post("/eval", json={"input": "2"}).status_code == 429
    assert sample("snekbox_queue_rejections_total") == before_rejections + 1
    release.set()
    busy.join(5)
    assert sample("snekbox_runs_in_flight") == 0


def test_metrics_endpoint_speaks_prometheus_text(client: testing.TestClient) -> None:
    client.simulate_post("/eval", json={"input": "1"})
    response = client.simulate_get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    text = response.text
    for name in (
        "snekbox_evals_total",
        "snekbox_eval_duration_seconds_bucket",
        "snekbox_queue_wait_seconds_bucket",
        "snekbox_runs_in_flight",
        "snekbox_queue_rejections_total",
        "snekbox_run_slots",
    ):
        assert f"\n{name}" in text, name
    for status in ("ok", "error", "timed_out", "out_of_memory", "failed"):
        assert f'snekbox_evals_total{{status="{status}"}}' in text


def test_openmetrics_on_request(client: testing.TestClient) -> None:
    response = client.simulate_get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


def scraped(client: testing.TestClient, name: str) -> float:
    """The value of an unlabelled sample in the /metrics text."""
    for family in text_string_to_metric_families(client.simulate_get("/metrics").text):
        for metric_sample in family.samples:
            if metric_sample.name == name:
                return metric_sample.value
    raise AssertionError(f"/metrics has no {name}")


def test_slot_utilization_is_slots_in_use_over_slots(runner: FakeRunner) -> None:
    """A default run holds one of 4 slots; a run with 3x the memory holds 2 more (3 of 4)."""
    client = testing.TestClient(create_app(runner, ApiSettings(4, 64 * 1024, 5)))
    assert scraped(client, "snekbox_run_slot_utilization") == 0
    release = threading.Event()
    started = threading.Semaphore(0)

    def hold() -> None:
        started.release()
        release.wait(5)

    runner.hook = hold
    bodies = [{"input": "1"}, {"input": "2", "limits": {"memory": 200 * 1024**2}}]
    busy = [
        threading.Thread(target=lambda body=body: client.simulate_post("/eval", json=body))
        for body in bodies
    ]
    for thread in busy:
        thread.start()
    for _ in busy:
        assert started.acquire(timeout=5)
    try:
        assert scraped(client, "snekbox_run_slots_in_use") == 3
        assert scraped(client, "snekbox_run_slot_utilization") == 0.75
    finally:
        release.set()
        for thread in busy:
            thread.join(5)
    assert scraped(client, "snekbox_run_slots_in_use") == 0
    assert scraped(client, "snekbox_run_slot_utilization") == 0


def test_slot_utilization_without_a_slot_count_is_zero() -> None:
    """Before any app set the slot count there is no load to report, not a division by 0."""
    families = [metric for metric in REGISTRY.collect() if metric.name != "snekbox_run_slots"]
    assert metrics.slot_utilization(families).samples[0].value == 0.0
