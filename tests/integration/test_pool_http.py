"""Pre-started jails behind the HTTP API: hits in /metrics, /health on the pooled path, shutdown.

Each server here runs in places of its own (see `private_host`), so the waiting jails it keeps
can be counted and its shutdown checked without other servers on the host getting in the way.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from snekbox.layout import INTERPRETER_ROOT
from snekbox.services.pool_settings import DEFAULT_POOL_SIZE, default_names
from tests.support.gunicorn import free_port, spawn_gunicorn, stop
from tests.support.private_host import PrivateHost, private_host, wait_for
from tests.support.server import Server, metric_values, running_server

pytestmark = pytest.mark.integration

WORKERS = 2
# The default: two per worker for each name of the default interpreter ("default" and 3.13).
JAILS_PER_WORKER = DEFAULT_POOL_SIZE * len(default_names(INTERPRETER_ROOT))
FILL_DEADLINE = 30.0
HEALTH_CACHE_SECONDS = 5


@pytest.fixture(scope="module")
def host() -> Iterator[PrivateHost]:
    with private_host() as host:
        yield host


@pytest.fixture(scope="module")
def pooled(host: PrivateHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log_path = tmp_path_factory.mktemp("pooled") / "server.log"
    with running_server(log_path, app=host.app, SNEKBOX_POOL="on", **host.env) as server:
        yield server


def pool_events(server: Server) -> dict[str, float]:
    """`snekbox_pool_events_total` summed over interpreters, by event."""
    totals: dict[str, float] = {}
    for name, value in metric_values(server).items():
        if name.startswith("snekbox_pool_events_total{"):
            event = name.split("event=", 1)[1].split(",", 1)[0].rstrip("}")
            totals[event] = totals.get(event, 0.0) + value
    return totals


def waiting(server: Server) -> float:
    """Jails ready and waiting across the workers: started, less taken and retired."""
    events = pool_events(server)
    return events["refill"] - events["hit"] - events["retire"]


def wait_until_full(server: Server) -> None:
    """Wait until both workers keep all their jails ready."""
    full = wait_for(lambda: waiting(server) == WORKERS * JAILS_PER_WORKER, FILL_DEADLINE, 0.1)
    assert full is not None, f"pool events: {pool_events(server)}"


def test_each_worker_keeps_its_jails_waiting_and_metrics_say_so(
    pooled: Server, host: PrivateHost
) -> None:
    wait_until_full(pooled)
    events = pool_events(pooled)
    assert set(events) == {"hit", "miss", "refill", "retire"}
    assert events["refill"] >= WORKERS * JAILS_PER_WORKER
    assert len(host.waiting_jails().nsjail_pids) == WORKERS * JAILS_PER_WORKER
    assert host.leftovers() == {}, "waiting jails are not leftovers"


@pytest.mark.parametrize(
    "body",
    [
        {"input": "print('hi')"},
        {
            "args": ["main.py"],
            "files": [{"path": "main.py", "content": base64.b64encode(b"print('hi')").decode()}],
        },
    ],
    ids=["input", "bot !eval"],
)
def test_an_eval_takes_a_waiting_jail(pooled: Server, host: PrivateHost, body: dict) -> None:
    wait_until_full(pooled)
    before = pool_events(pooled)
    response = pooled.post_eval({**body, "details": True})
    assert response.status == 200
    answer = response.json
    assert (answer["stdout"], answer["returncode"], answer["status"]) == ("hi\n", 0, "ok")
    after = pool_events(pooled)
    assert after["hit"] == before["hit"] + 1
    assert after["miss"] == before["miss"]
    wait_until_full(pooled)
    assert pool_events(pooled)["refill"] == before["refill"] + 1


def test_an_interpreter_option_runs_cold_and_counts_nothing(
    pooled: Server, host: PrivateHost
) -> None:
    wait_until_full(pooled)
    before = pool_events(pooled)
    answer = pooled.post_eval({"args": ["-I", "-c", "import sys; print(sys.flags.isolated)"]}).json
    assert (answer["stdout"], answer["returncode"]) == ("1\n", 0)
    assert pool_events(pooled) == before


def test_health_takes_the_pooled_path(pooled: Server, host: PrivateHost) -> None:
    wait_until_full(pooled)
    time.sleep(HEALTH_CACHE_SECONDS + 0.5)  # the worker that answers probes afresh
    before = pool_events(pooled)
    response = pooled.request("GET", "/health")
    assert response.status == 200, response.body
    assert pool_events(pooled)["hit"] == before["hit"] + 1


def test_with_the_pool_off_no_jail_waits(tmp_path: Path) -> None:
    with private_host() as own:
        env = {**own.env, "SNEKBOX_POOL": "off"}
        with running_server(tmp_path / "server.log", app=own.app, **env) as server:
            answer = server.post_eval({"input": "print('cold')"}).json
            assert (answer["stdout"], answer["returncode"]) == ("cold\n", 0)
            assert server.request("GET", "/health").status == 200
            assert pool_events(server) == {}
            assert own.waiting_jails().nsjail_pids == set()


def test_a_graceful_stop_ends_every_waiting_jail(tmp_path: Path) -> None:
    with private_host() as own:
        with running_server(tmp_path / "server.log", app=own.app, **own.env) as server:
            wait_until_full(server)
            held = own.waiting_jails()
            assert len(held.nsjail_pids) == WORKERS * JAILS_PER_WORKER
        gone = wait_for(lambda: not (own.mounts() or own.run_cgroups() or own.nsjail_pids()), 10)
        assert gone is not None, (own.mounts(), own.run_cgroups(), own.nsjail_pids(), held)


def test_a_bad_pool_setting_stops_start_up_with_its_name(tmp_path: Path) -> None:
    log_path = tmp_path / "server.log"
    env = {"SNEKBOX_POOL": "sometimes", "PATH": "/usr/bin:/bin"}
    process = spawn_gunicorn(log_path, "127.0.0.1", free_port(), env)
    try:
        assert process.wait(30) != 0
    finally:
        stop(process)
    assert "SNEKBOX_POOL must be on or off, not 'sometimes'" in log_path.read_text()
