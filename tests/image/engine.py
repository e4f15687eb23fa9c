"""Support for the image tests: podman, the images built from the real Dockerfile, HTTP.

Everything the tests create is named with NAME_PREFIX, so the session can prove at the end that
none of it is left. Images are built with the layer cache (--layers): a second run rebuilds
only the layers whose inputs changed.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("SNEKBOX_IMAGE_CACHE", "/var/cache/snekbox/image"))
NAME_PREFIX = "snekbox-image-test"
PRODUCTION_TAG = "localhost/snekbox:latest"  # deployment.yaml's image: snekbox:latest
DEV_TAG = "localhost/snekbox:dev"  # docker-compose.yml's image: snekbox:dev
STAGE_TAG = "localhost/snekbox-stage"  # keeps each build stage's cache from being dangling
# No 3.14 source is reachable here: 3.13 and a free-threaded 3.13 stand in for the four builds.
INTERPRETERS = ("3.13", "3.13t")
DEFAULT_INTERPRETER = "3.13"
# requirements/eval-deps.pip pins a numpy with cp314t wheels but none for cp313t, so where the
# tests install eval packages they name the interpreters that have wheels.
EVAL_PACKAGE_INTERPRETERS = ("3.13",)
# The host's CA bundle, for pip behind this network's TLS proxy (see the Dockerfile's PIP_CERT).
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BUILD_CA_PATH = "/run/build-ca.crt"
SOURCES_MOUNT = "/python-sources"
START_TIMEOUT = 180
HTTP_TIMEOUT = 60

log = logging.getLogger(__name__)


def podman(
    *args: str, check: bool = True, timeout: float = 600, log_path: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run podman; on failure raise with its output (or the log file's tail)."""
    if log_path is None:
        result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
        output = result.stdout + result.stderr
    else:
        with log_path.open("a") as log_file:
            result = subprocess.run(
                ["podman", *args],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
            )
        output = log_path.read_text()[-6000:]
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({result.returncode}):\n{output}")
    return result


def prepare_host() -> dict[str, str]:
    """Engine, base image and CPython source (scripts/prepare_image_host.sh): its NAME=value."""
    result = subprocess.run(
        [str(REPO / "scripts" / "prepare_image_host.sh")],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-6000:]
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def pip_ca_run_args() -> list[str]:
    """`podman run` options that let pip in a container through this network's TLS proxy."""
    return ["-v", f"{HOST_CA_BUNDLE}:{BUILD_CA_PATH}:ro", "-e", f"PIP_CERT={BUILD_CA_PATH}"]


@dataclass
class Build:
    """One image built from the repository's Dockerfile, and how long that took."""

    tag: str
    seconds: float
    log_path: Path


def build_image(host: dict[str, str], tag: str, *, dev: bool, log_dir: Path) -> Build:
    """Build the `snekbox` target as the README says, with this host's offline sources."""
    build_args = {
        "WITH_PYTHON_3_13": "1",
        # The DEV image installs the eval packages for every interpreter it has, and 3.13t has
        # no wheels for the pinned numpy.
        "WITH_PYTHON_3_13T": "0" if dev else "1",
        "WITH_PYTHON_3_14": "0",
        "WITH_PYTHON_3_14T": "0",
        "WITH_PYTHON_3_14J": "0",
        "PYTHON_DEFAULT": DEFAULT_INTERPRETER,
        "PYTHON_OPTIMIZE": "",  # PGO + LTO would triple a CI build's time.
        "PYTHON_3_13_VERSION": host["PYTHON_3_13_VERSION"],
        "PYTHON_3_13_SHA256": host["PYTHON_3_13_SHA256"],
        "PYTHON_3_13_URL": f"file://{SOURCES_MOUNT}/Python-{host['PYTHON_3_13_VERSION']}.tar.xz",
        "PIP_CERT": BUILD_CA_PATH,
        "DEV": "1" if dev else "0",
    }
    # --force-rm: a failed step leaves no build container (which would pin its image).
    args = ["build", "--layers", "--force-rm", "--target", "snekbox", "--tag", tag]
    for name, value in build_args.items():
        args += ["--build-arg", f"{name}={value}"]
    args += ["-v", f"{host['SOURCE_DIR']}:{SOURCES_MOUNT}:ro"]
    args += ["-v", f"{HOST_CA_BUNDLE}:{BUILD_CA_PATH}:ro"]
    variant = tag.rsplit(":", 1)[-1]
    log_path = log_dir / f"build-{variant}.log"
    log_path.write_text("")
    started = time.monotonic()
    podman(*args, str(REPO), timeout=3600, log_path=log_path)
    build = Build(tag, time.monotonic() - started, log_path)
    log.info("built %s in %.0f s (log: %s)", tag, build.seconds, log_path)
    # A stage's last layer is nobody's parent: untagged, it would be a dangling image, and
    # pruning it would throw away the cached CPython builds. Tagged, it stays until replaced.
    for stage in dockerfile_stages()[:-1]:
        stage_args = [
            *args[: args.index("--target") + 1],
            stage,
            "--tag",
            f"{STAGE_TAG}:{variant}-{stage}",
        ]
        stage_args += args[args.index("--tag") + 2 :]
        podman(*stage_args, str(REPO), timeout=600, log_path=log_path)
    return build


def dockerfile_stages() -> list[str]:
    """The Dockerfile's stage names, in order (the last is the image)."""
    text = (REPO / "Dockerfile").read_text()
    return re.findall(r"^FROM \S+ AS (\S+)$", text, re.MULTILINE)


def prune_dangling_images() -> None:
    """Remove untagged leaves (stage images a changed Dockerfile or tag replaced)."""
    podman("image", "prune", "--force")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str | None

    @property
    def json(self) -> Any:
        assert self.content_type == "application/json", self.content_type
        return json.loads(self.body)


def request(
    address: tuple[str, int],
    method: str,
    path: str,
    body: Any = None,
    timeout: float = HTTP_TIMEOUT,
) -> Response:
    connection = http.client.HTTPConnection(*address, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {} if data is None else {"Content-Type": "application/json"}
        connection.request(method, path, body=data, headers=headers)
        answer = connection.getresponse()
        return Response(answer.status, answer.read(), answer.getheader("Content-Type"))
    finally:
        connection.close()


def wait_until_healthy(
    address: tuple[str, int], describe: Any, timeout: float = START_TIMEOUT
) -> None:
    """Poll GET /health until 200; on timeout fail with what `describe()` says (the logs)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            answer = request(address, "GET", "/health", timeout=15)
            if answer.status == 200:
                return
            last = f"{answer.status} {answer.body[:500]!r}"
        except OSError as error:
            last = repr(error)
        time.sleep(1)
    raise AssertionError(f"/health never answered 200 ({last}):\n{describe()}")


def eval_job(code: str, interpreter: str = DEFAULT_INTERPRETER) -> dict[str, Any]:
    """The bot's !eval request: main.py as a base64 file, run with an executable_path."""
    return {
        "args": ["main.py"],
        "files": [{"path": "main.py", "content": base64.b64encode(code.encode()).decode()}],
        "executable_path": f"/snekbin/python/{interpreter}/bin/python",
    }


def bot_view(result: dict[str, Any]) -> dict[str, Any]:
    """The keys the bot reads; it ignores the rest (status, duration, ...)."""
    return {key: result[key] for key in ("stdout", "returncode", "files")}


@dataclass
class Container:
    """A detached container, removed (with its anonymous volumes) by remove()."""

    name: str
    address: tuple[str, int]
    run_args: Sequence[str] = field(default_factory=list)

    @classmethod
    def start(cls, image: str, suffix: str, *options: str) -> Container:
        name = f"{NAME_PREFIX}-{suffix}"
        port = free_port()
        podman("rm", "--force", "--ignore", name)
        # As the README runs it, published on loopback only.
        run_args = [
            "run",
            "--detach",
            "--name",
            name,
            "--privileged",
            "--init",
            "--ipc=none",
            "--publish",
            f"127.0.0.1:{port}:8060",
            *options,
            image,
        ]
        podman(*run_args)
        return cls(name, ("127.0.0.1", port), run_args)

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return (result.stdout + result.stderr)[-8000:]

    def exec(self, *command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return podman("exec", self.name, *command, check=False, timeout=timeout)

    def remove(self) -> None:
        podman("rm", "--force", "--volumes", "--time", "5", self.name)


@contextmanager
def checkout_user_base_mount_point() -> Iterator[None]:
    """Mounting a volume at /snekbox/user_base over the checkout makes user_base/ in it."""
    mount_point = REPO / "user_base"
    existed = mount_point.exists()
    try:
        yield
    finally:
        if not existed and mount_point.is_dir() and not any(mount_point.iterdir()):
            mount_point.rmdir()
