"""docker-compose.yml, run with podman-compose: the DEV image serving this checkout's code.

The DEV image is built by the session (compose's own build could not reach python.org for the
sources); `up` then runs it exactly as the file says, and `down` must let a run in progress
finish: the stop grace period has to cover Gunicorn's graceful timeout.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.image import engine

COMPOSE_VERSION = "1.6.0"
PROJECT = "snekbox"  # docker-compose.yml's name: what `docker compose up` calls it.


def podman_compose() -> Path:
    """podman-compose from PyPI, in a tool venv of its own outside the repository."""
    venv = engine.CACHE / "tools" / f"podman-compose-{COMPOSE_VERSION}"
    binary = venv / "bin" / "podman-compose"
    if not binary.exists():
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", f"podman-compose=={COMPOSE_VERSION}"],
            check=True,
        )
    return binary


@dataclass
class Compose:
    binary: Path
    env: dict[str, str]
    address: tuple[str, int]

    def __call__(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binary), "--file", "docker-compose.yml", *args],
            capture_output=True,
            text=True,
            cwd=engine.REPO,
            env=self.env,
            timeout=timeout,
        )
        assert result.returncode == 0, f"podman-compose {args}: {result.stdout}{result.stderr}"
        return result

    def container(self) -> str:
        listing = engine.podman(
            "ps", "--filter", f"label=io.podman.compose.project={PROJECT}", "--format", "{{.Names}}"
        )
        (name,) = listing.stdout.split()
        return name


@pytest.fixture(scope="module")
def compose(dev_image: str) -> Iterator[Compose]:
    port = engine.free_port()
    env = {**os.environ, "SNEKBOX_PORT": str(port)}
    runner = Compose(podman_compose(), env, ("127.0.0.1", port))
    with engine.checkout_user_base_mount_point():
        try:
            runner("up", "--detach", "--no-build")
            engine.wait_until_healthy(
                runner.address,
                lambda: engine.podman("logs", runner.container(), check=False).stderr,
            )
            yield runner
        finally:
            runner("down", "--volumes", timeout=120)


def test_compose_serves_with_the_eval_packages_of_the_dev_image(compose: Compose) -> None:
    answer = engine.request(
        compose.address,
        "POST",
        "/eval",
        engine.eval_job("import numpy\nprint(numpy.arange(10).sum())"),
    )
    assert answer.status == 200
    assert engine.bot_view(answer.json) == {"stdout": "45\n", "returncode": 0, "files": []}


def test_compose_healthcheck_reports_healthy(compose: Compose) -> None:
    result = engine.podman("healthcheck", "run", compose.container(), check=False, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_down_lets_a_run_in_progress_finish(compose: Compose) -> None:
    """An 18 s run asked for with limits.time survives `down`: the stop grace covers it."""
    answers: list[engine.Response] = []
    job = {"input": "import time\ntime.sleep(18)\nprint('finished')", "limits": {"time": 25}}
    client = threading.Thread(
        target=lambda: answers.append(
            engine.request(compose.address, "POST", "/eval", job, timeout=90)
        )
    )
    client.start()
    time.sleep(3)
    compose("down", "--volumes", timeout=120)
    client.join(timeout=90)
    assert answers, "the client got no answer"
    assert answers[0].status == 200
    assert answers[0].json["stdout"] == "finished\n", answers[0].json
