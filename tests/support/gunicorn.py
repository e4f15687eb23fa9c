"""Start, wait for and stop a real Gunicorn with our config: shared by the tests and the benchmark.

Free of pytest, so `scripts/bench.py` (which runs without the dev tools) uses the very launcher
the integration tests prove. `tests.support.server` wraps it with the tests' settings.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = [
    "GUNICORN_CONFIG",
    "REPO",
    "START_TIMEOUT",
    "ServerFailedError",
    "free_port",
    "spawn_gunicorn",
    "stop",
    "wait_for_status",
]

REPO = Path(__file__).resolve().parents[2]
GUNICORN_CONFIG = REPO / "config" / "gunicorn.conf.py"
START_TIMEOUT = 60
STOP_TIMEOUT = 30


class ServerFailedError(RuntimeError):
    """The server exited or did not answer in time; the message holds its log."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def spawn_gunicorn(
    log_path: Path,
    host: str,
    port: int,
    env: Mapping[str, str],
    *,
    app: str | None = None,
    config: Path = GUNICORN_CONFIG,
    cwd: Path = REPO,
) -> subprocess.Popen[bytes]:
    """Start Gunicorn with ``config`` on ``host:port`` in a process group of its own."""
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                str(config),
                "--bind",
                f"{host}:{port}",
                *([app] if app else []),
            ],
            cwd=cwd,
            env=dict(env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so teardown reaches every worker
        )


def wait_for_status(
    process: subprocess.Popen[bytes],
    host: str,
    port: int,
    path: str,
    status: int,
    what: str,
    log: Callable[[], str],
) -> None:
    """Wait until ``GET path`` answers ``status``; raise with ``log()`` if ``what`` dies."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerFailedError(f"{what} exited with {process.returncode}:\n{log()}")
        try:
            connection = http.client.HTTPConnection(host, port, timeout=5)
            try:
                connection.request("GET", path)
                if connection.getresponse().status == status:
                    return
            finally:
                connection.close()
        except OSError:
            pass
        time.sleep(0.2)
    raise ServerFailedError(f"{what} did not answer within {START_TIMEOUT} s:\n{log()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server's process group gracefully, and for certain if that stalls."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
