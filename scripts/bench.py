#!/usr/bin/env python3
"""Benchmark the snekbox server with its pre-started jails on and off, against the NsJail floor.

Starts two Gunicorns with config/gunicorn.conf.py on free loopback ports, one with
SNEKBOX_POOL=off (every run in a fresh jail) and one with the pool on (the default). The two
take turns in every cell, so background load on the machine hits both alike:

1. the floor in this process: a bare `python -c pass`, and `NsJail.python3(["-c", "pass"])`
   (a fresh jail, no HTTP), with the CPU time one sandboxed run costs;
2. print('hi') and the bot's `!eval` shape (`args ["main.py"]` plus one file) at concurrency
   1, one request every `--pause` seconds as a chat bot sends them (the pool refills between);
3. print('hi') back to back at concurrency 4 and 8, where the pool drains and what is left is
   the cold path plus the refill; the import-heavy and files-in/out workloads at 1, 4 and 8;
4. eight concurrent infinite loops against the default 6 s time limit.

It prints p50/p95/p99 latency and requests per second per cell, checks every answer, and checks
the targets: pooled print('hi') at c=1 p50 <= 10 ms and p99 <= 20 ms; the bot shape p50 <= 12
ms; at c=4 and c=8 at least the cold path's requests per second (within 5 %) and a p50 at most
10 % over the cold one; all eight time-outs answered by 6.5 s; no wrong answer in any cell.

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
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from snekbox.nsjail import DEFAULT_EXECUTABLE_PATH, NsJail  # noqa: E402
from tests.support.gunicorn import free_port, spawn_gunicorn, stop, wait_for_status  # noqa: E402

MODES = ("cold", "pool")
PRINT_P50_TARGET_MS = 10.0
PRINT_P99_TARGET_MS = 20.0
BOT_P50_TARGET_MS = 12.0
RPS_TOLERANCE = 0.95
LATENCY_TOLERANCE = 1.10
TIMEOUT_RUNS = 8
TIMEOUT_ANSWER_S = 6.5
LOADED = (4, 8)
WORKLOAD_CONCURRENCIES = (1, 4, 8)


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
PRINT_HI = WORKLOADS[0]
BOT_EVAL = Workload(
    "bot !eval main.py",
    {
        "args": ["main.py"],
        "files": [{"path": "main.py", "content": _b64(b"print('hi from main.py')\n")}],
    },
    lambda a: _original(a) == {"stdout": "hi from main.py\n", "returncode": 0, "files": []},
)
TIMEOUT_LOOP = Workload(
    "while True: pass",
    {"input": "while True: pass"},
    lambda a: (a["returncode"], a["stdout"]) == (137, ""),
)


# -- measurements ----------------------------------------------------------------------------


@dataclass
class Stats:
    """Latencies of one series and the wall time it took."""

    name: str
    concurrency: int
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    failures: int = 0

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) * 1000

    @property
    def p95(self) -> float:
        return statistics.quantiles(self.latencies, n=20, method="inclusive")[-1] * 1000

    @property
    def p99(self) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[-1] * 1000

    def add(self, other: Stats) -> None:
        """Pool another part of the same series (a round of alternating turns) into this one."""
        self.latencies += other.latencies
        self.wall += other.wall
        self.failures += other.failures

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


def measure_paced(
    ports: dict[str, int], nsjail: NsJail, count: int, pause: float
) -> tuple[list[Stats], float]:
    """The floor and c=1 requests of both servers, one step every ``pause`` seconds, in turns.

    Returns the rows and the CPU seconds one floor run (a fresh jail's ``-c pass``) costs.
    """
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

    clients = {mode: HttpClient(port) for mode, port in ports.items()}
    steps: list[tuple[str, Callable[[], bool]]] = [
        ("bare python -c pass", bare),
        ("NsJail -c pass (floor)", floor),
    ]
    for workload in (PRINT_HI, BOT_EVAL):
        for mode, client in clients.items():
            steps.append((f"{mode}: {workload.name}", lambda c=client, w=workload: c.send(w)))
    rows = {name: Stats(name, 1) for name, _ in steps}
    try:
        for i in range(count):
            shift = i % len(steps)
            for name, step in steps[shift:] + steps[:shift]:  # rotate who goes first
                time.sleep(pause)
                began = time.perf_counter()
                ok = step()
                elapsed = time.perf_counter() - began
                rows[name].latencies.append(elapsed)
                rows[name].wall += elapsed
                rows[name].failures += not ok
    finally:
        for client in clients.values():
            client.close()
    return list(rows.values()), floor_cpu / count


def measure_turns(
    ports: dict[str, int], workload: Workload, concurrency: int, count: int, rounds: int = 4
) -> list[Stats]:
    """``workload`` back to back at ``concurrency`` on each server, in alternating rounds."""
    rows = {mode: Stats(f"{mode}: {workload.name}", concurrency) for mode in ports}
    per_round = max(count // rounds, concurrency * 2)
    for round_number in range(rounds):
        order = list(ports) if round_number % 2 == 0 else list(reversed(ports))
        for mode in order:
            rows[mode].add(run_series(ports[mode], workload, concurrency, per_round))
    return list(rows.values())


def measure_timeouts(port: int, mode: str) -> tuple[Stats, float]:
    """Eight concurrent infinite loops at once; the row and the slowest answer in seconds."""
    row = Stats(f"{mode}: {TIMEOUT_LOOP.name}", TIMEOUT_RUNS)
    part = run_series(port, TIMEOUT_LOOP, TIMEOUT_RUNS, TIMEOUT_RUNS)
    row.add(part)
    return row, max(part.latencies)


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


# -- the servers -----------------------------------------------------------------------------


@contextmanager
def servers(log_dir: Path) -> Iterator[dict[str, int]]:
    """A Gunicorn per mode (pool off, pool on), as configured for production, on loopback."""
    processes = {}
    ports = {}
    try:
        for mode in MODES:
            env = dict(
                os.environ, PYTHONUNBUFFERED="1", SNEKBOX_POOL=(mode == "pool" and "on") or "off"
            )
            env.pop("SNEKBOX_SLOTS_DIR", None)
            ports[mode] = free_port()
            log_path = log_dir / f"snekbox-bench-{mode}.log"
            processes[mode] = spawn_gunicorn(log_path, "127.0.0.1", ports[mode], env)
            wait_for_status(
                processes[mode],
                "127.0.0.1",
                ports[mode],
                "/ready",
                404,
                "Gunicorn",
                log_path.read_text,
            )
        yield ports
    finally:
        for process in processes.values():
            stop(process)


# -- report ----------------------------------------------------------------------------------

COLUMNS = ("series", "c", "n", "p50 ms", "p95 ms", "p99 ms", "req/s", "fail")
WIDTHS = (30, 4, 6, 9, 9, 9, 8, 6)


def _line(cells: list[str], markdown: bool) -> str:
    if markdown:
        return "| " + " | ".join(cells) + " |"
    return cells[0].ljust(WIDTHS[0]) + "".join(
        cell.rjust(width) for cell, width in zip(cells[1:], WIDTHS[1:], strict=True)
    )


def _row(stats: Stats, markdown: bool) -> str:
    cells = [
        stats.name,
        str(stats.concurrency),
        str(len(stats.latencies)),
        f"{stats.p50:.1f}",
        f"{stats.p95:.1f}",
        f"{stats.p99:.1f}",
        f"{stats.rps:.1f}",
        str(stats.failures),
    ]
    return _line(cells, markdown)


def _header(markdown: bool) -> str:
    header = _line(list(COLUMNS), markdown)
    return header + ("\n|" + "---|" * len(COLUMNS) if markdown else "")


@dataclass
class Target:
    """One figure the issue asks for, and whether this run met it."""

    what: str
    met: bool


def _targets(rows: dict[str, Stats], slowest_timeouts: dict[str, float]) -> list[Target]:
    def row(name: str, concurrency: int) -> Stats:
        return rows[f"{name}@{concurrency}"]

    hi, bot = PRINT_HI.name, BOT_EVAL.name
    pooled_hi, pooled_bot = row(f"pool: {hi}", 1), row(f"pool: {bot}", 1)
    targets = [
        Target(
            f"pooled print('hi') at c=1: p50 {pooled_hi.p50:.1f} ms <= {PRINT_P50_TARGET_MS:g}, "
            f"p99 {pooled_hi.p99:.1f} ms <= {PRINT_P99_TARGET_MS:g}",
            pooled_hi.p50 <= PRINT_P50_TARGET_MS and pooled_hi.p99 <= PRINT_P99_TARGET_MS,
        ),
        Target(
            f"pooled bot !eval at c=1: p50 {pooled_bot.p50:.1f} ms <= {BOT_P50_TARGET_MS:g}",
            pooled_bot.p50 <= BOT_P50_TARGET_MS,
        ),
    ]
    for concurrency in LOADED:
        cold, pool = row(f"cold: {hi}", concurrency), row(f"pool: {hi}", concurrency)
        targets.append(
            Target(
                f"print('hi') at c={concurrency}: pool {pool.rps:.1f} req/s vs cold "
                f"{cold.rps:.1f} (>= {RPS_TOLERANCE:.0%}), p50 {pool.p50:.1f} vs "
                f"{cold.p50:.1f} ms (<= {LATENCY_TOLERANCE:.0%})",
                pool.rps >= cold.rps * RPS_TOLERANCE and pool.p50 <= cold.p50 * LATENCY_TOLERANCE,
            )
        )
    for mode, slowest in slowest_timeouts.items():
        targets.append(
            Target(
                f"{TIMEOUT_RUNS} concurrent 6 s time-outs ({mode}): all answered by "
                f"{slowest:.2f} s (<= {TIMEOUT_ANSWER_S:g} s)",
                slowest <= TIMEOUT_ANSWER_S,
            )
        )
    failures = sum(stats.failures for stats in rows.values())
    targets.append(Target(f"wrong or failed answers: {failures}", failures == 0))
    return targets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100, help="requests per series")
    parser.add_argument(
        "--pause", type=float, default=0.1, help="seconds between c=1 requests (default 0.1)"
    )
    parser.add_argument("--markdown", action="store_true", help="print tables as Markdown")
    parser.add_argument("--log-dir", type=Path, default=Path("/tmp"))
    options = parser.parse_args()
    os.chdir(REPO)
    count = options.requests
    load_before = os.getloadavg()[0]

    nsjail = NsJail()
    nsjail.python3(["-c", "pass"])  # warm the page cache
    ordered: list[Stats] = []
    slowest: dict[str, float] = {}
    with servers(options.log_dir) as ports:
        for workload in (*WORKLOADS, BOT_EVAL):
            for port in ports.values():
                run_series(port, workload, 2, 4)  # warm both workers of both servers
        paced, cpu_per_run = measure_paced(ports, nsjail, count, options.pause)
        ordered += paced
        for concurrency in LOADED:
            ordered += measure_turns(ports, PRINT_HI, concurrency, max(count, concurrency * 10))
        for workload in WORKLOADS[1:]:
            for concurrency in WORKLOAD_CONCURRENCIES:
                ordered += measure_turns(ports, workload, concurrency, max(count, concurrency * 10))
        for mode, port in ports.items():
            time.sleep(1.0)  # let the pool refill, so both start the same way
            row, slowest[mode] = measure_timeouts(port, mode)
            ordered.append(row)
    load_after = os.getloadavg()[0]

    print(_header(options.markdown))
    for stats in ordered:
        print(_row(stats, options.markdown))
    floor = ordered[1]
    print()
    print(f"Load average: {load_before:.2f} before, {load_after:.2f} after (other work skews this)")
    print(f"NsJail floor: p50 {floor.p50:.1f} ms, {cpu_per_run * 1000:.1f} ms CPU per run")
    rows = {f"{stats.name}@{stats.concurrency}": stats for stats in ordered}
    targets = _targets(rows, slowest)
    for target in targets:
        print(("met:    " if target.met else "MISSED: ") + target.what)
    met = all(target.met for target in targets)
    print("All targets met." if met else "TARGET MISSED.")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
