#!/usr/bin/env python3
"""Benchmark the snekbox server against the cost of a sandbox without HTTP in front.

Starts Gunicorn with config/gunicorn.conf.py on a free loopback port, then:

1. measures the floor in this process: a bare `python -c pass`, and the same run through
   `NsJail.python3` (no HTTP), with the CPU time one sandboxed run costs. The floor runs take
   turns with HTTP print('hi') requests in one loop, so background load hits both alike;
2. runs print('hi') at concurrency 4 through HTTP and through the engine alone, in turns;
3. sends three workloads (print('hi'), an import-heavy snippet, files in and out) at
   concurrency 1, 2, 4 and 8 over keep-alive connections, checking every answer;
4. prints p50/p95 latency and requests per second next to the floor, and checks the targets:
   at concurrency 1 a print('hi') request costs at most 5 ms over the NsJail floor at p50, and at
   concurrency 4 the server reaches 85 % of the requests per second the machine's cores allow
   for the floor's CPU cost.

Run as root on a provisioned host, from the repository root:
    .venv/bin/python scripts/bench.py [--requests 100] [--markdown]
The exit status is 1 when any answer was wrong or a target was missed.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from snekbox.nsjail import DEFAULT_EXECUTABLE_PATH, NsJail  # noqa: E402

OVERHEAD_TARGET_MS = 5.0
THROUGHPUT_TARGET = 0.85
CONCURRENCIES = (1, 2, 4, 8)


# -- workloads -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """A request body and the check its answer must pass (a fast wrong answer is a failure)."""

    name: str
    body: dict[str, Any]
    check: Callable[[dict[str, Any]], bool]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


IMPORT_HEAVY = textwrap.dedent(
    """
    import asyncio, decimal, email.mime.multipart, fractions, http.client, json, logging
    import statistics, typing, unittest, urllib.request, xml.etree.ElementTree, zipfile
    print(len(__import__("sys").modules) > 150)
    """
)

FILES_CODE = textwrap.dedent(
    """
    from pathlib import Path
    numbers = [int(n) for n in Path("data/numbers.txt").read_text().split()]
    Path("out").mkdir()
    Path("out/total.txt").write_text(str(sum(numbers)))
    print(len(numbers))
    """
)
NUMBERS = " ".join(str(n) for n in range(1000)).encode()


def _original(answer: dict[str, Any]) -> dict[str, Any]:
    """The original API's fields; the status and usage fields (API 1.1) come on top."""
    return {key: answer.get(key) for key in ("stdout", "returncode", "files")}


def _files_ok(answer: dict[str, Any]) -> bool:
    files = answer["files"]
    return (
        answer["stdout"] == "1000\n"
        and answer["returncode"] == 0
        and [f["path"] for f in files] == ["out/total.txt"]
        and base64.b64decode(files[0]["content"]) == str(sum(range(1000))).encode()
    )


WORKLOADS = (
    Workload(
        "print('hi')",
        {"input": "print('hi')"},
        lambda a: _original(a) == {"stdout": "hi\n", "returncode": 0, "files": []},
    ),
    Workload(
        "import-heavy",
        {"input": IMPORT_HEAVY},
        lambda a: _original(a) == {"stdout": "True\n", "returncode": 0, "files": []},
    ),
    Workload(
        "files in/out",
        {
            "args": ["main.py"],
            "files": [
                {"path": "main.py", "content": _b64(FILES_CODE.encode())},
                {"path": "data/numbers.txt", "content": _b64(NUMBERS)},
            ],
        },
        _files_ok,
    ),
)


# -- measurements ----------------------------------------------------------------------------


@dataclass
class Stats:
    """Latencies of one series and the wall time it took."""

    name: str
    concurrency: int
    latencies: list[float]
    wall: float
    failures: int = 0

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) * 1000

    @property
    def p95(self) -> float:
        return statistics.quantiles(self.latencies, n=20, method="inclusive")[-1] * 1000

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.wall


def _cpu_seconds() -> float:
    """CPU time of this process and its reaped descendants (NsJail and the jailed program)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class HttpClient:
    """One keep-alive connection that sends a workload and checks the answer."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def send(self, workload: Workload) -> bool:
        """POST the workload; True when the answer is the expected one."""
        try:
            self.connection.request(
                "POST", "/eval", json.dumps(workload.body), {"Content-Type": "application/json"}
            )
            answer = self.connection.getresponse()
            data = answer.read()
            return answer.status == 200 and workload.check(json.loads(data))
        except (OSError, http.client.HTTPException, ValueError):
            self.connection.close()
            return False

    def close(self) -> None:
        self.connection.close()


def measure_floor(port: int, nsjail: NsJail, count: int) -> tuple[list[Stats], float]:
    """The floor and the HTTP print('hi') at concurrency 1, interleaved.

    Running them in turns, in the same loop, makes any background load on the machine hit
    the floor and the server alike, so their difference is the server's own cost. Also returns
    the CPU seconds one floor run (NsJail `-c pass`) costs.
    """
    hi = WORKLOADS[0]
    client = HttpClient(port)
    floor_cpu = 0.0

    def bare() -> bool:
        done = subprocess.run([DEFAULT_EXECUTABLE_PATH, "-c", "pass"], check=False)
        return done.returncode == 0

    def floor() -> bool:
        nonlocal floor_cpu
        before = _cpu_seconds()
        result = nsjail.python3(["-c", "pass"])
        floor_cpu += _cpu_seconds() - before
        return result.returncode == 0 and result.stdout == ""

    def engine_hi() -> bool:
        result = nsjail.python3(["-c", "print('hi')"])
        return result.returncode == 0 and result.stdout == "hi\n"

    steps: list[tuple[str, Callable[[], bool]]] = [
        ("bare python -c pass", bare),
        ("NsJail -c pass (floor)", floor),
        ("NsJail print('hi')", engine_hi),
        ("HTTP print('hi')", lambda: client.send(hi)),
    ]
    latencies: dict[str, list[float]] = {name: [] for name, _ in steps}
    failures = dict.fromkeys(latencies, 0)
    start = time.perf_counter()
    try:
        for i in range(count):
            for name, step in steps[i % 4 :] + steps[: i % 4]:  # rotate who goes first
                began = time.perf_counter()
                ok = step()
                latencies[name].append(time.perf_counter() - began)
                failures[name] += not ok
    finally:
        client.close()
    wall = time.perf_counter() - start
    rows = [
        Stats(name, 1, latencies[name], wall / len(steps), failures[name]) for name in latencies
    ]
    return rows, floor_cpu / count


def measure_throughput_pair(
    port: int, nsjail: NsJail, concurrency: int, count: int, rounds: int = 5
) -> tuple[Stats, Stats]:
    """print('hi') at `concurrency`, through HTTP and through the engine alone, in turns.

    Alternating rounds of each keeps background load from favouring one side.
    """
    engine = Stats("NsJail print('hi')", concurrency, [], 0.0)
    server = Stats("HTTP print('hi')", concurrency, [], 0.0)
    per_round = max(count // rounds, concurrency)
    hi = WORKLOADS[0]

    def engine_run(_: int) -> None:
        began = time.perf_counter()
        result = nsjail.python3(["-c", "print('hi')"])
        engine.latencies.append(time.perf_counter() - began)
        engine.failures += result.returncode != 0 or result.stdout != "hi\n"

    for _ in range(rounds):
        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(engine_run, range(per_round)))
        engine.wall += time.perf_counter() - start
        part = run_series(port, hi, concurrency, per_round)
        server.latencies += part.latencies
        server.failures += part.failures
        server.wall += part.wall
    return engine, server


def run_series(port: int, workload: Workload, concurrency: int, count: int) -> Stats:
    """Send `count` requests from `concurrency` threads, one keep-alive connection each."""
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    remaining = iter(range(count))

    def client() -> None:
        nonlocal failures
        http = HttpClient(port)
        try:
            while True:
                with lock:
                    if next(remaining, None) is None:
                        return
                began = time.perf_counter()
                ok = http.send(workload)
                elapsed = time.perf_counter() - began
                with lock:
                    latencies.append(elapsed)
                    failures += not ok
        finally:
            http.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Stats(workload.name, concurrency, latencies, time.perf_counter() - start, failures)


# -- the server ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def gunicorn(log_path: Path) -> Iterator[int]:
    """Run the server as configured for production, on a free loopback port."""
    port = _free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("SNEKBOX_SLOTS_DIR", None)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py"),
                *("--bind", f"127.0.0.1:{port}"),
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"Gunicorn did not start; see {log_path}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/ready")
                if connection.getresponse().status == 404:
                    break
            except OSError:
                time.sleep(0.2)
        yield port
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


# -- report ----------------------------------------------------------------------------------


def _columns(cells: list[str]) -> str:
    widths = (26, 4, 6, 10, 10, 9, 6)
    return cells[0].ljust(widths[0]) + "".join(
        cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)
    )


def _row(stats: Stats, markdown: bool) -> str:
    cells = [
        stats.name,
        str(stats.concurrency),
        str(len(stats.latencies)),
        f"{stats.p50:.1f}",
        f"{stats.p95:.1f}",
        f"{stats.rps:.1f}",
        str(stats.failures),
    ]
    if markdown:
        return "| " + " | ".join(cells) + " |"
    return _columns(cells)


def _header(markdown: bool) -> str:
    names = ["series", "c", "n", "p50 ms", "p95 ms", "req/s", "fail"]
    if markdown:
        return "| " + " | ".join(names) + " |\n|" + "---|" * len(names)
    return _columns(names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100, help="requests per series")
    parser.add_argument("--markdown", action="store_true", help="print tables as Markdown")
    parser.add_argument("--log", type=Path, default=Path("/tmp/snekbox-bench-gunicorn.log"))
    options = parser.parse_args()
    os.chdir(REPO)
    count = options.requests
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()[0]

    nsjail = NsJail()
    nsjail.python3(["-c", "pass"])  # warm the page cache
    with gunicorn(options.log) as port:
        for workload in WORKLOADS:
            run_series(port, workload, 2, 4)  # warm both workers
        floor_rows, cpu_per_run = measure_floor(port, nsjail, count)
        engine_c4, http_c4 = measure_throughput_pair(port, nsjail, 4, max(count, 40))
        series = [
            run_series(port, workload, concurrency, max(count, concurrency * 10))
            for workload in WORKLOADS
            for concurrency in CONCURRENCIES
        ]
    load_after = os.getloadavg()[0]

    print(_header(options.markdown))
    for stats in [*floor_rows, engine_c4, http_c4, *series]:
        print(_row(stats, options.markdown))

    floor = floor_rows[1]
    overhead = floor_rows[3].p50 - floor.p50
    overhead_vs_hi = floor_rows[3].p50 - floor_rows[2].p50
    ceiling = cores / cpu_per_run
    share = http_c4.rps / ceiling
    failures = sum(s.failures for s in [*floor_rows, engine_c4, http_c4, *series])
    print()
    print(f"Load average: {load_before:.2f} before, {load_after:.2f} after (other work skews this)")
    print(f"NsJail floor: p50 {floor.p50:.1f} ms, {cpu_per_run * 1000:.1f} ms CPU per run")
    print(
        f"HTTP overhead at c=1, print('hi') over the floor at p50: {overhead:+.1f} ms "
        f"(target <= {OVERHEAD_TARGET_MS:.0f} ms); "
        f"over NsJail print('hi'): {overhead_vs_hi:+.1f} ms"
    )
    print(
        f"Throughput at c=4: {http_c4.rps:.1f} req/s = {share:.0%} of the {ceiling:.1f} req/s "
        f"{cores} cores allow for the floor's CPU cost (target >= {THROUGHPUT_TARGET:.0%}); "
        f"the engine alone, in turns with it: {engine_c4.rps:.1f} req/s"
    )
    print(f"Wrong or failed answers: {failures}")
    met = overhead <= OVERHEAD_TARGET_MS and share >= THROUGHPUT_TARGET and failures == 0
    print("All targets met." if met else "TARGET MISSED.")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
