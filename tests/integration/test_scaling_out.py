"""Three snekbox nodes behind nginx, as config/nginx/snekbox.conf.template deploys them.

Each node is a real Gunicorn bound to its own loopback address (127.0.0.11-13, so they look
like three machines and traffic stays on loopback) with a memfs root, owners directory, temp
directory and cgroup parents of its own (`private_host`) and 2 run slots; nginx (Debian's
package, `scripts/install_nginx.sh`) runs in front in the foreground with a config rendered by
`scripts/render_nginx_conf.py`, exactly as the README tells an operator to. The test starts
and stops every process itself.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.private_host import PrivateHost, private_host, wait_for
from tests.support.server import (
    REPO,
    Response,
    Server,
    free_port,
    metric_values,
    running_server,
    wait_until_answers,
)

pytestmark = pytest.mark.integration

log = logging.getLogger(__name__)

NGINX = Path("/usr/sbin/nginx")
NODE_ADDRESSES = ("127.0.0.11", "127.0.0.12", "127.0.0.13")
SLOTS_PER_NODE = 2
QUEUE_TIMEOUT = 1
# What the nodes and the renderer read: the front's limits are the nodes' limits.
NODE_ENV = {
    "SNEKBOX_MAX_CONCURRENT_RUNS": str(SLOTS_PER_NODE),
    "SNEKBOX_QUEUE_TIMEOUT": str(QUEUE_TIMEOUT),
}
# The default time limit: what a node's 429 tells the client to wait.
RETRY_AFTER = "6"
# Correctness deadlines, generous for a shared 2-core host.
ANSWER_DEADLINE = 30.0
REJOIN_DEADLINE = 40.0
CLEANUP_DEADLINE = 20.0


def sleeper(seconds: float, tag: str = "done") -> dict[str, str]:
    return {"input": f"import time; time.sleep({seconds}); print({tag!r})"}


OK_RUNS = "snekbox_evals_total{status=ok}"
REJECTIONS = "snekbox_queue_rejections_total"


@dataclass
class Node:
    """One snekbox server on its own address, with its own places on the host."""

    address: str
    port: int
    host: PrivateHost
    log_dir: Path
    stack: ExitStack = field(default_factory=ExitStack)
    server: Server | None = None
    starts: int = 0

    def start(self) -> Server:
        self.starts += 1
        self.server = self.stack.enter_context(
            running_server(
                self.log_dir / f"{self.address}-{self.starts}.log",
                host=self.address,
                port=self.port,
                app=self.host.app,
                **self.host.env,
                **NODE_ENV,
            )
        )
        return self.server

    def kill(self) -> None:
        """SIGKILL the master and its workers at once, as a machine that loses power."""
        assert self.server is not None
        os.killpg(self.server.process.pid, signal.SIGKILL)
        self.server.process.wait(10)

    @property
    def alive(self) -> Server:
        assert self.server is not None and self.server.process.poll() is None
        return self.server


@dataclass
class Cluster:
    nodes: list[Node]
    front: Server
    access_log: Path

    def counts(self, name: str) -> list[float]:
        """`name` on each node, from its own /metrics."""
        return self.counts_of(name, self.nodes)

    @staticmethod
    def counts_of(name: str, nodes: list[Node]) -> list[float]:
        return [metric_values(node.alive).get(name, 0.0) for node in nodes]


def require_nginx() -> None:
    """Fail (never skip) without nginx: the front is what this module tests."""
    if not os.access(NGINX, os.X_OK):
        pytest.fail(f"{NGINX} is missing: run scripts/install_nginx.sh (make test does)")


def nginx_main_config(prefix: Path, snekbox_conf: Path) -> Path:
    """A foreground nginx of the test's own: its pid, logs and buffers under `prefix`."""
    path = prefix / "nginx.conf"
    path.write_text(
        f"""
daemon off;
user root;
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 1024; }}
http {{
    log_format nodes '$status "$request" upstream=$upstream_addr statuses=$upstream_status '
                     'time=$request_time';
    access_log {prefix}/access.log nodes;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    include {snekbox_conf};
}}
"""
    )
    return path


def render_front_config(listen: str, nodes: list[Node], output: Path) -> None:
    """Render the shipped template with the shipped script, in the nodes' environment."""
    command = [sys.executable, "scripts/render_nginx_conf.py", "--listen", listen]
    for node in nodes:
        command += ["--node", f"{node.address}:{node.port}"]
    command += ["--output", str(output)]
    subprocess.run(command, cwd=REPO, env=dict(os.environ, **NODE_ENV), check=True)


def wait_until_front_serves(front: Server, log_path: Path) -> None:
    wait_until_answers(front, "/info", 200, "nginx", log_path.read_text)


def stop_nginx(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGQUIT)  # finish the requests in progress, then exit
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def process_group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_nginx()
    log_dir = tmp_path_factory.mktemp("scaling-out")
    with ExitStack() as stack:
        nodes = []
        for address in NODE_ADDRESSES:
            host = stack.enter_context(private_host())
            node = Node(address, free_port(address), host, log_dir)
            stack.enter_context(node.stack)
            node.start()
            nodes.append(node)

        prefix = log_dir / "nginx"
        prefix.mkdir()
        listen = f"127.0.0.1:{free_port()}"
        render_front_config(listen, nodes, prefix / "snekbox.conf")
        nginx_log = prefix / "stderr.log"
        with nginx_log.open("wb") as output:
            process = subprocess.Popen(
                [
                    NGINX,
                    "-p",
                    str(prefix),
                    "-c",
                    str(nginx_main_config(prefix, prefix / "snekbox.conf")),
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        stack.callback(stop_nginx, process)
        host_name, port = listen.rsplit(":", 1)
        front = Server(host_name, int(port), process, nginx_log)
        wait_until_front_serves(front, nginx_log)
        yield Cluster(nodes, front, prefix / "access.log")

        pgids = [node.server.process.pid for node in nodes if node.server] + [process.pid]
    # Every process of every node and of nginx is gone once the stack has stopped them.
    assert all(process_group_gone(pgid) for pgid in pgids), pgids


def flood(front: Server, bodies: list[dict], timeout: float = ANSWER_DEADLINE) -> list[Response]:
    """POST every body to the front at once; every answer must come within `timeout`."""
    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda body: front.post_eval(body, timeout=timeout), bodies))


def test_requests_spread_over_every_node(cluster: Cluster) -> None:
    before = cluster.counts(OK_RUNS)
    for number in range(9):
        answer = cluster.front.post_eval({"input": f"print({number})"})
        assert (answer.status, answer.json["stdout"]) == (200, f"{number}\n")
    ran = [after - first for after, first in zip(cluster.counts(OK_RUNS), before, strict=True)]
    log.info("9 requests one after another ran %s times on the three nodes", ran)
    assert sum(ran) == 9
    assert all(count >= 1 for count in ran), ran


def test_a_flood_larger_than_one_node_is_served_without_429(cluster: Cluster) -> None:
    """Six concurrent 2 s runs: three times one node's slots, and all answered 200."""
    before_ok, before_rejected = cluster.counts(OK_RUNS), cluster.counts(REJECTIONS)
    start = time.monotonic()
    answers = flood(cluster.front, [sleeper(2, f"run {n}") for n in range(6)])
    elapsed = time.monotonic() - start
    assert [a.status for a in answers] == [200] * 6, [(a.status, a.body) for a in answers]
    assert sorted(a.json["stdout"] for a in answers) == [f"run {n}\n" for n in range(6)]
    ran = [a - b for a, b in zip(cluster.counts(OK_RUNS), before_ok, strict=True)]
    rejected = [a - b for a, b in zip(cluster.counts(REJECTIONS), before_rejected, strict=True)]
    log.info("6 concurrent 2 s runs: all 200 in %.2f s, ran %s per node", elapsed, ran)
    assert ran == [2, 2, 2], ran  # least_conn: each node got as many as it has slots
    assert rejected == [0, 0, 0], rejected


def test_a_node_full_from_elsewhere_hands_its_work_to_the_others(cluster: Cluster) -> None:
    """Node 1 is filled behind nginx's back, so nginx still sends it a share of the requests
    (one at a time, least_conn sees three idle nodes and takes turns): its 429 sends that
    evaluation to the next node, and the client gets the answer, not the 429."""
    busy_node = cluster.nodes[0].alive
    before_rejected = cluster.counts(REJECTIONS)
    with ThreadPoolExecutor(SLOTS_PER_NODE) as pool:
        hogs = [pool.submit(busy_node.post_eval, sleeper(8)) for _ in range(SLOTS_PER_NODE)]
        assert wait_for(lambda: metric_values(busy_node)["snekbox_run_slots_in_use"] == 2, 15)
        answers, took = [], []
        for number in range(3):
            start = time.monotonic()
            answers.append(cluster.front.post_eval({"input": f"print({number})"}))
            took.append(round(time.monotonic() - start, 2))
        assert [h.result().status for h in hogs] == [200] * SLOTS_PER_NODE
    assert [a.status for a in answers] == [200] * 3, [(a.status, a.body) for a in answers]
    assert [a.json["stdout"] for a in answers] == ["0\n", "1\n", "2\n"]
    rejected = [a - b for a, b in zip(cluster.counts(REJECTIONS), before_rejected, strict=True)]
    log.info("3 requests with node 1 full: all 200, taking %s s; 429s per node %s", took, rejected)
    assert rejected == [1, 0, 0], rejected  # node 1 was asked once and said no


def test_all_nodes_full_answers_429_with_retry_after(cluster: Cluster) -> None:
    """Twelve concurrent 3 s runs on 6 slots with a 1 s queue: the rest are told to retry."""
    start = time.monotonic()
    answers = flood(cluster.front, [sleeper(3) for _ in range(12)])
    elapsed = time.monotonic() - start
    served = [a for a in answers if a.status == 200]
    refused = [a for a in answers if a.status == 429]
    log.info(
        "12 concurrent 3 s runs on 6 slots: %d answered 200, %d 429, in %.2f s",
        len(served),
        len(refused),
        elapsed,
    )
    assert len(served) + len(refused) == 12, [(a.status, a.body) for a in answers]
    assert 1 <= len(served) <= len(NODE_ADDRESSES) * SLOTS_PER_NODE
    assert refused
    for answer in refused:
        assert answer.headers["Retry-After"] == RETRY_AFTER
        assert answer.json["title"] == "429 Too Many Requests"


def test_a_killed_node_stops_getting_traffic_and_rejoins(cluster: Cluster) -> None:
    victim = cluster.nodes[1]
    victim_server = victim.alive
    others = [cluster.nodes[0], cluster.nodes[2]]
    others_before_flood = sum(cluster.counts_of(OK_RUNS, others))
    with ThreadPoolExecutor(6) as pool:

        def post(body: dict) -> tuple[Response | OSError, float]:
            """The answer (or the error) and when it came."""
            try:
                outcome: Response | OSError = cluster.front.post_eval(body, ANSWER_DEADLINE)
            except OSError as error:  # a closed connection is an acceptable error too
                outcome = error
            return outcome, time.monotonic()

        def victim_is_full() -> bool:
            return metric_values(victim_server)["snekbox_runs_in_flight"] == SLOTS_PER_NODE

        running: list[Future[tuple[Response | OSError, float]]] = [
            pool.submit(post, sleeper(4)) for _ in range(6)
        ]
        assert wait_for(victim_is_full, 15), "the victim never ran its share of the flood"
        killed_at = time.monotonic()
        victim.kill()
        results = [future.result() for future in running]

    statuses = [o.status if isinstance(o, Response) else type(o).__name__ for o, _ in results]
    failed = [s for s in statuses if s != 200]
    failed_after = [round(t - killed_at, 2) for (o, t) in results if getattr(o, "status", 0) != 200]
    log.info(
        "a node killed mid-flood: outcomes %s, the failed ones %s s after the kill",
        statuses,
        failed_after,
    )
    # The victim's two clients get an error (never a run elsewhere, never a hang); the others
    # were answered by their nodes.
    assert len(failed) == SLOTS_PER_NODE, statuses
    assert all(s in (502, 504) or isinstance(s, str) for s in failed), statuses
    assert sum(cluster.counts_of(OK_RUNS, others)) - others_before_flood == 6 - SLOTS_PER_NODE

    # While it is down, its connections are refused and nginx sends everything elsewhere.
    others_before = cluster.counts_of(OK_RUNS, others)
    answers = [cluster.front.post_eval({"input": f"print({n})"}) for n in range(6)]
    assert [a.status for a in answers] == [200] * 6, [(a.status, a.body) for a in answers]
    others_after = cluster.counts_of(OK_RUNS, others)
    assert sum(others_after) - sum(others_before) == 6

    # Back on the same address; ready when its /health says so; then it gets traffic again.
    restarted = victim.start()
    assert wait_for(lambda: restarted.request("GET", "/health").status == 200, 30)
    rejoin_start = time.monotonic()

    def victim_ran_something() -> bool:
        flood(cluster.front, [{"input": "print('again')"} for _ in range(3)])
        return metric_values(restarted).get(OK_RUNS, 0.0) >= 1

    rejoined = wait_for(victim_ran_something, REJOIN_DEADLINE, step=0.5)
    log.info("the restarted node got traffic again %.1f s after it was ready", rejoined or -1)
    assert rejoined is not None, f"no traffic reached the restarted node in {REJOIN_DEADLINE} s"
    assert time.monotonic() - rejoin_start < REJOIN_DEADLINE


def leftovers(host: PrivateHost) -> dict[str, object]:
    """What a node left behind (its pre-started jails are not leftovers: they wait on purpose)."""
    return host.leftovers()


def test_nothing_is_left_on_any_node(cluster: Cluster) -> None:
    """After floods, 429s and a node killed mid-run (and restarted): no mount, run cgroup or
    sandbox process remains in any node's own places."""
    for node in cluster.nodes:
        gone = wait_for(lambda node=node: not leftovers(node.host), CLEANUP_DEADLINE)
        assert gone is not None, f"{node.address}: {leftovers(node.host)}"
