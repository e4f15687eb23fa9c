#!/usr/bin/env python3
"""Benchmark the snekbox server against the cost of a sandbox without HTTP in front.

Starts Gunicorn with config/gunicorn.conf.py on a free loopback port, then:

1. measures the floor in this process: a bare `python -c pass`, and the same run through
   `NsJail.python3` (no HTTP), with the CPU time one sandboxed run costs;
2. sends three workloads (print('hi'), an import-heavy snippet, files in and out) at
   concurrency 1, 2, 4 and 8 over keep-alive connections, checking every answer;
3. prints p50/p95 latency and requests per second next to the floor, and checks the targets:
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
        lambda a: a == {"stdout": "hi\n", "returncode": 0, "files": []},
    ),
    Workload(
        "import-heavy",
        {"input": IMPORT_HEAVY},
        lambda a: a == {"stdout": "True\n", "returncode": 0, "files": []},
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


def measure_bare_python(count: int) -> Stats:
    latencies = []
    start = time.perf_counter()
    for _ in range(count):
        began = time.perf_counter()
        subprocess.run([DEFAULT_EXECUTABLE_PATH, "-c", "pass"], check=True)
        latencies.append(time.perf_counter() - began)
    return Stats("bare python -c pass", 1, latencies, time.perf_counter() - start)


def measure_nsjail(count: int, code: str) -> tuple[Stats, float]:
    """Sequential runs through the engine, no HTTP; also returns CPU seconds per run."""
    nsjail = NsJail()
    nsjail.python3(["-c", code])  # warm the page cache and the engine
    latencies = []
    failures = 0
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    for _ in range(count):
        began = time.perf_counter()
        result = nsjail.python3(["-c", code])
        latencies.append(time.perf_counter() - began)
        failures += result.returncode != 0
    wall = time.perf_counter() - start
    cpu = (_cpu_seconds() - cpu_before) / count
    return Stats(f"NsJail -c {code!r}", 1, latencies, wall, failures), cpu


def run_series(port: int, workload: Workload, concurrency: int, count: int) -> Stats:
    """Send `count` requests from `concurrency` threads, one keep-alive connection each."""
    body = json.dumps(workload.body).encode()
    headers = {"Content-Type": "application/json"}
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    remaining = iter(range(count))

    def client() -> None:
        nonlocal failures
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            while True:
                with lock:
                    if next(remaining, None) is None:
                        return
                began = time.perf_counter()
                try:
                    connection.request("POST", "/eval", body, headers)
                    answer = connection.getresponse()
                    data = answer.read()
                    ok = answer.status == 200 and workload.check(json.loads(data))
                except (OSError, http.client.HTTPException, ValueError):
                    connection.close()
                    ok = False
                elapsed = time.perf_counter() - began
                with lock:
                    latencies.append(elapsed)
                    failures += not ok
        finally:
            connection.close()

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

    bare = measure_bare_python(count)
    floor, cpu_per_run = measure_nsjail(count, "pass")
    engine_hi, _ = measure_nsjail(count, "print('hi')")
    floor_rows = [bare, floor, engine_hi]

    series: list[Stats] = []
    with gunicorn(options.log) as port:
        for workload in WORKLOADS:
            run_series(port, workload, 2, 4)  # warm both workers
            for concurrency in CONCURRENCIES:
                series.append(run_series(port, workload, concurrency, max(count, concurrency * 10)))

    print(_header(options.markdown))
    for stats in floor_rows + series:
        print(_row(stats, options.markdown))

    hi = {s.concurrency: s for s in series if s.name == "print('hi')"}
    overhead = hi[1].p50 - floor.p50
    ceiling = cores / cpu_per_run
    share = hi[4].rps / ceiling
    failures = sum(s.failures for s in floor_rows + series)
    print()
    print(f"NsJail floor: p50 {floor.p50:.1f} ms, {cpu_per_run * 1000:.1f} ms CPU per run")
    print(
        f"HTTP overhead at c=1 (print('hi') p50 - floor p50): {overhead:+.1f} ms "
        f"(target <= {OVERHEAD_TARGET_MS:.0f} ms)"
    )
    print(
        f"Throughput at c=4: {hi[4].rps:.1f} req/s = {share:.0%} of the {ceiling:.1f} req/s "
        f"{cores} cores allow for the floor's CPU cost (target >= {THROUGHPUT_TARGET:.0%})"
    )
    print(f"Wrong or failed answers: {failures}")
    met = overhead <= OVERHEAD_TARGET_MS and share >= THROUGHPUT_TARGET and failures == 0
    print("All targets met." if met else "TARGET MISSED.")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
