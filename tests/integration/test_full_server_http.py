"""A server with few slots: 429 after the queue timeout, heavy runs, and metrics of all workers.

The server runs 3 sandboxes at once and lets a request wait 1 s for a slot; its two Gunicorn
workers write their metrics into one PROMETHEUS_MULTIPROC_DIR, as deployed.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from tests.support.openapi_doc import ORIGINAL_FIELDS, check_response
from tests.support.server import Response, Server, metric_values, running_server

pytestmark = pytest.mark.integration

SLOTS = 3
QUEUE_TIMEOUT = 1.0
MiB = 1024**2
STALE_FILE = "counter_999999.db"


@pytest.fixture(scope="module")
def metrics_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("metrics")
    (directory / STALE_FILE).write_bytes(b"left over from a previous server")
    return directory


@pytest.fixture(scope="module")
def small(metrics_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("small") / "server.log"
    with running_server(
        log,
        SNEKBOX_MAX_CONCURRENT_RUNS=str(SLOTS),
        SNEKBOX_QUEUE_TIMEOUT=str(QUEUE_TIMEOUT),
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    ) as server:
        yield server


def timed_post(server: Server, body: dict, delay: float = 0.0) -> tuple[Response, float]:
    """POST after `delay` seconds; return the answer and how long it took."""
    time.sleep(delay)
    start = time.monotonic()
    response = server.post_eval(body)
    return response, time.monotonic() - start


def delta(after: dict[str, float], before: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


def test_stale_metrics_are_cleared_at_start(small: Server, metrics_dir: Path) -> None:
    assert not (metrics_dir / STALE_FILE).exists()
    assert metric_values(small)["snekbox_run_slots"] == SLOTS


def test_more_requests_than_slots_get_429_after_the_queue_timeout(small: Server) -> None:
    before = metric_values(small)
    body = {"input": "import time; time.sleep(2.5); print('done')"}
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: timed_post(small, body), range(6)))

    served = [(r, t) for r, t in results if r.status == 200]
    refused = [(r, t) for r, t in results if r.status == 429]
    assert len(served) == SLOTS and len(refused) == 6 - SLOTS, [r.status for r, _ in results]
    for response, _ in served:
        assert (response.json["stdout"], response.json["returncode"]) == ("done\n", 0)
    for response, elapsed in refused:
        # Told after the queue timeout, long before a slot would have freed up (2.5 s).
        assert QUEUE_TIMEOUT <= elapsed < QUEUE_TIMEOUT + 0.8, elapsed
        assert response.headers["Retry-After"] == "6"
        assert response.json["title"] == "429 Too Many Requests"
        assert "retry after 6 seconds" in response.json["description"]
        check_response("/eval", "POST", 429, response.headers["Content-Type"], response.body)

    after = metric_values(small)
    assert delta(after, before, "snekbox_queue_rejections_total") == 6 - SLOTS
    assert delta(after, before, "snekbox_evals_total{status=ok}") == SLOTS


def test_a_heavy_run_takes_several_slots(small: Server) -> None:
    """200 MiB of memory is two default runs' worth: with it and one default run, 3 slots
    are full and the next request is refused, though only two sandboxes run."""
    sleep = "import time; time.sleep(2.5); print('done')"
    jobs = [
        ({"input": sleep, "limits": {"memory": 200 * MiB}}, 0.0),
        ({"input": sleep}, 0.2),
        ({"input": "print('late')"}, 0.5),
    ]
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda job: timed_post(small, *job), jobs))
    assert [r.status for r, _ in results] == [200, 200, 429]

    # Once they are done, the slots are free again.
    assert small.post_eval({"input": "print('again')"}).json["stdout"] == "again\n"


def test_metrics_count_every_workers_evaluations(small: Server, metrics_dir: Path) -> None:
    before = metric_values(small)
    bodies = (
        [{"input": "print(1)"}] * 8
        + [{"input": "raise SystemExit(2)"}] * 3
        + [{"input": "while True: pass", "limits": {"time": 1}}]
    )
    # Default answers carry no status: the metrics count the statuses of every run anyway.
    with ThreadPoolExecutor(3) as pool:
        answers = [r.json for r in pool.map(small.post_eval, bodies)]
    assert all(set(answer) == set(ORIGINAL_FIELDS) for answer in answers)
    assert sorted(a["returncode"] for a in answers) == sorted([0] * 8 + [2] * 3 + [137])

    # Whichever worker answers the scrape, it reports the sum of both.
    scrapes = [metric_values(small) for _ in range(10)]
    for after in scrapes:
        assert delta(after, before, "snekbox_evals_total{status=ok}") == 8
        assert delta(after, before, "snekbox_evals_total{status=error}") == 3
        assert delta(after, before, "snekbox_evals_total{status=timed_out}") == 1
        assert delta(after, before, "snekbox_eval_duration_seconds_count") == 12
        assert delta(after, before, "snekbox_queue_wait_seconds_count") == 12
        assert delta(after, before, "snekbox_eval_duration_seconds_bucket{le=0.5}") >= 11
        assert delta(after, before, "snekbox_eval_duration_seconds_bucket{le=0.5}") < 12
        assert after["snekbox_runs_in_flight"] == 0

    # And that sum is what the workers' own files hold.
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(metrics_dir))
    files_total = registry.get_sample_value("snekbox_eval_duration_seconds_count")
    assert files_total == scrapes[-1]["snekbox_eval_duration_seconds_count"]


def test_runs_in_flight_are_counted_while_they_run(small: Server) -> None:
    with ThreadPoolExecutor(2) as pool:
        running = [
            pool.submit(small.post_eval, {"input": "import time; time.sleep(2)"}) for _ in range(2)
        ]
        time.sleep(1.0)
        during = metric_values(small)["snekbox_runs_in_flight"]
        for future in running:
            assert future.result().status == 200
    assert during == 2
    assert metric_values(small)["snekbox_runs_in_flight"] == 0


def test_slot_utilization_counts_every_workers_slots(small: Server) -> None:
    """A heavy run (2 slots) and a default one fill the 3 slots, whichever workers run them;
    the ratio is computed from the summed slots in use, so every scrape says 1."""
    sleep = "import time; time.sleep(2)"
    bodies = [{"input": sleep, "limits": {"memory": 200 * MiB}}, {"input": sleep}]
    with ThreadPoolExecutor(2) as pool:
        running = [pool.submit(small.post_eval, body) for body in bodies]
        time.sleep(1.0)
        during = [metric_values(small) for _ in range(6)]
        assert [future.result().status for future in running] == [200, 200]
    for scrape in during:
        assert scrape["snekbox_run_slots_in_use"] == SLOTS
        assert scrape["snekbox_run_slot_utilization"] == 1.0
    after = metric_values(small)
    assert (after["snekbox_run_slots_in_use"], after["snekbox_run_slot_utilization"]) == (0, 0)


def worker_pids(server: Server) -> set[int]:
    """The Gunicorn workers: the master's children."""
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == server.process.pid:
            pids.add(int(stat.parent.name))
    return pids


def test_a_dead_workers_live_gauges_are_dropped(small: Server, metrics_dir: Path) -> None:
    workers = worker_pids(small)
    assert len(workers) == 2
    victim = min(workers)
    assert (metrics_dir / f"gauge_livesum_{victim}.db").exists()
    os.kill(victim, signal.SIGKILL)

    deadline = time.monotonic() + 30
    while len(worker_pids(small) - {victim}) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(worker_pids(small) - {victim}) == 2, small.log()
    time.sleep(1)  # the replacement loads the app
    assert not list(metrics_dir.glob(f"gauge_live*_{victim}.db"))
    after = metric_values(small)
    assert after["snekbox_runs_in_flight"] == 0
    assert after["snekbox_run_slots"] == SLOTS
    # Counters of the dead worker still count: its files stay.
    assert after["snekbox_evals_total{status=ok}"] >= 8
