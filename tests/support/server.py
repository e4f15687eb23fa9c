"""A real Gunicorn, started with config/gunicorn.conf.py on a free loopback port, and talking to it.

The server runs real NsJail sandboxes, so these tests need root and a provisioned host
(`make setup`). They fail, never skip, when either is missing: an API that was not tested
against real sandboxes is not known to work.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.gunicorn import (
    GUNICORN_CONFIG,
    REPO,
    ServerFailedError,
    free_port,
    spawn_gunicorn,
    stop,
    wait_for_status,
)

__all__ = [
    "BODY_TIMEOUT",
    "CONCURRENT_RUNS",
    "REPO",
    "Response",
    "Server",
    "free_port",
    "metric_values",
    "require_provisioned_root",
    "running_server",
    "stop",
    "wait_until_answers",
    "wait_until_serving",
]

# The scenario: eight concurrent sleeps with the setting at 8.
CONCURRENT_RUNS = 8
BODY_TIMEOUT = 5


@dataclass
class Response:
    """What a test needs from an HTTP answer."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def json(self) -> Any:
        assert self.headers["Content-Type"] == "application/json", self.headers
        return json.loads(self.body)


@dataclass
class Server:
    """A running Gunicorn and how to talk to it."""

    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def connection(self, timeout: float = 30) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> Response:
        connection = self.connection(timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            answer = connection.getresponse()
            return Response(answer.status, answer.headers, answer.read())
        finally:
            connection.close()

    def post_eval(self, body: Any, timeout: float = 30) -> Response:
        """POST a JSON body to /eval."""
        return self.request(
            "POST",
            "/eval",
            json.dumps(body),
            {"Content-Type": "application/json"},
            timeout,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_until_serving(server: Server) -> None:
    """Wait until a worker has loaded the app (an unknown route answers 404)."""
    wait_until_answers(server, "/ready-probe", 404, "Gunicorn", server.log)


def require_provisioned_root() -> None:
    """Fail (never skip) when the sandboxes cannot run here."""
    if os.geteuid() != 0:
        pytest.fail("The integration tests run real NsJail sandboxes and need root.")
    if not Path("/snekbin/python/default/bin/python").is_file():
        pytest.fail("The host is not provisioned (no /snekbin/python/default); run make setup.")


@contextmanager
def running_server(
    log_path: Path,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    app: str | None = None,
    config: Path = GUNICORN_CONFIG,
    cwd: Path = REPO,
    **env_overrides: str,
) -> Iterator[Server]:
    """Start Gunicorn as deployed, apart from the port and `env_overrides`; stop it after.

    `host` is the loopback address to bind (any of 127.0.0.0/8, so that several servers look
    like separate machines); `port` defaults to a free one there; `app` replaces the config's
    `wsgi_app` (Gunicorn's positional argument), e.g. to give the engine another NsJail
    config; `config` and `cwd` replace our Gunicorn config and the directory the app's
    relative `./config/snekbox.cfg` is read from, as a user mounting their own files would.
    """
    require_provisioned_root()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["SNEKBOX_MAX_CONCURRENT_RUNS"] = str(CONCURRENT_RUNS)
    env["SNEKBOX_BODY_TIMEOUT"] = str(BODY_TIMEOUT)
    env.pop("SNEKBOX_SLOTS_DIR", None)
    # Each server's slot and metrics directories in a temp directory of its own: a starting
    # server removes the directories of servers it finds dead, and must see only its own kind.
    private_tmp = log_path.parent / f"{log_path.stem}-tmp"
    private_tmp.mkdir(exist_ok=True)
    env["TMPDIR"] = str(private_tmp)
    env.update(env_overrides)
    port = port or free_port(host)
    process = spawn_gunicorn(log_path, host, port, env, app=app, config=config, cwd=cwd)
    running = Server(host, port, process, log_path)
    try:
        wait_until_serving(running)
        yield running
    finally:
        stop(process)


def wait_until_answers(
    server: Server, path: str, status: int, what: str, log: Callable[[], str]
) -> None:
    """Wait until ``GET path`` answers ``status``; fail with ``log()`` if ``what`` dies."""
    try:
        wait_for_status(server.process, server.host, server.port, path, status, what, log)
    except ServerFailedError as error:
        pytest.fail(str(error))


def metric_values(server: Server) -> dict[str, float]:
    """Scrape /metrics: sample name with labels -> value."""
    response = server.request("GET", "/metrics")
    assert response.status == 200, response.body
    assert response.headers["Content-Type"].startswith("text/plain")
    values = {}
    for family in text_string_to_metric_families(response.body.decode()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values
