"""GET /info and the start-up discovery behind it (fake interpreters; the real ones are probed
in tests/integration/test_discovery_http.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from falcon import testing

from snekbox.api import create_app
from snekbox.services.interpreters import (
    Interpreter,
    Package,
    discover_interpreters,
    jail_environment,
    read_packages,
)
from snekbox.services.settings import ApiSettings, LimitMaxima
from tests.support.api import FakeRunner

MiB = 1024**2


def make_dist(site: Path, folder: str, name: str, version: str) -> None:
    info = site / folder
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def fake_interpreter(root: Path, name: str, facts: dict | None, exit_code: int = 0) -> Path:
    """A `bin/python` that prints `facts` as the probe script would (or fails)."""
    python = root / name / "bin" / "python"
    python.parent.mkdir(parents=True)
    output = json.dumps(facts) if facts is not None else "not json"
    python.write_text(
        f"#!/bin/sh\necho 'noise from sitecustomize'\necho '{output}'\nexit {exit_code}\n"
    )
    python.chmod(0o755)
    return python


def facts(version: str, site: Path, **flags: bool) -> dict:
    return {
        "version": version,
        "sys_version": f"{version} (main) [GCC]",
        "implementation": "cpython",
        "free_threaded": flags.get("free_threaded", False),
        "jit": flags.get("jit", False),
        "user_site": str(site),
    }


def test_packages_are_read_from_dist_info(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    make_dist(site, "numpy-2.3.0.dist-info", "numpy", "2.3.0")
    make_dist(site, "PyYAML-6.0.2.dist-info", "PyYAML", "6.0.2")
    make_dist(site, "attrs-25.1.0.dist-info", "attrs", "25.1.0")
    (site / "numpy").mkdir()
    assert read_packages(site) == [
        Package("attrs", "25.1.0"),
        Package("numpy", "2.3.0"),
        Package("PyYAML", "6.0.2"),
    ]
    assert read_packages(tmp_path / "missing") == []


def test_discovery_lists_each_interpreter_once_with_the_default_marked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "python"
    site = tmp_path / "user_base" / "lib" / "python3.14t" / "site-packages"
    make_dist(site, "numpy-2.3.0.dist-info", "numpy", "2.3.0")
    fake_interpreter(root, "3.13", facts("3.13.5", tmp_path / "none"))
    fake_interpreter(root, "3.14t", facts("3.14.0", site, free_threaded=True))
    fake_interpreter(root, "3.14j", facts("3.14.0", tmp_path / "none", jit=True))
    fake_interpreter(root, "broken", None, exit_code=1)
    (root / "empty").mkdir()  # no bin/python: not an interpreter
    (root / "default").symlink_to("3.14t")

    with caplog.at_level(logging.ERROR):
        found = discover_interpreters(root, env={"PYTHONUSERBASE": "x"})

    assert [i.name for i in found] == ["3.13", "3.14j", "3.14t"]
    by_name = {i.name: i for i in found}
    assert by_name["3.14t"] == Interpreter(
        name="3.14t",
        executable_path=str(root / "3.14t" / "bin" / "python"),
        default=True,
        version="3.14.0",
        sys_version="3.14.0 (main) [GCC]",
        implementation="cpython",
        free_threaded=True,
        jit=False,
        packages=[Package("numpy", "2.3.0")],
    )
    assert by_name["3.14j"].jit and not by_name["3.14j"].default
    assert by_name["3.13"].packages == []
    assert "broken/bin/python does not run" in caplog.text


def test_jail_environment_parses_envar_lines() -> None:
    assert jail_environment(["A=1", "B=x=y", "EMPTY=", "=nameless"]) == {
        "A": "1",
        "B": "x=y",
        "EMPTY": "",
    }


def test_info_reports_versions_interpreters_limits_and_concurrency(runner: FakeRunner) -> None:
    interpreter = Interpreter(
        "3.13", "/snekbin/python/3.13/bin/python", True, "3.13.5", "3.13.5 (main)", "cpython",
        False, False, [Package("numpy", "2.3.0")],
    )  # fmt: skip
    settings = ApiSettings(
        5, 64 * 1024, 5, queue_timeout=2.5, max_limits=LimitMaxima(20, 256 * MiB, 32, 2_000_000)
    )
    client = testing.TestClient(create_app(runner, settings, interpreters=[interpreter]))
    response = client.simulate_get("/info")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    info = response.json
    import snekbox

    assert info["snekbox_version"] == snekbox.__version__
    assert info["api_version"] == "1.2.0"
    assert info["default_executable_path"] == "/snekbin/python/default/bin/python"
    assert info["interpreters"] == [
        {
            "name": "3.13",
            "executable_path": "/snekbin/python/3.13/bin/python",
            "default": True,
            "version": "3.13.5",
            "sys_version": "3.13.5 (main)",
            "implementation": "cpython",
            "free_threaded": False,
            "jit": False,
            "packages": [{"name": "numpy", "version": "2.3.0"}],
        }
    ]
    assert info["limits"] == {
        "default": {"time": 6, "memory": 70 * MiB, "pids": 15, "output_size": 1_000_000},
        "maximum": {"time": 20, "memory": 256 * MiB, "pids": 32, "output_size": 2_000_000},
    }
    assert info["concurrency"] == {"max_concurrent_runs": 5, "queue_timeout": 2.5}
    assert runner.calls == []  # nothing ran to answer it


def test_info_does_no_work_per_request(runner: FakeRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    client = testing.TestClient(create_app(runner, ApiSettings(1, 1024, 5)))
    first = client.simulate_get("/info").content

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("discovery ran during a request")

    monkeypatch.setattr("snekbox.services.interpreters.discover_interpreters", refuse)
    monkeypatch.setattr("snekbox.services.interpreters.read_packages", refuse)
    assert client.simulate_get("/info").content == first
