"""deployment.yaml, played with `podman kube play`: the init container installs the eval
packages into the pod's emptyDir, then the snekbox container serves with them.

The played copy differs in what this machine needs, not in what the manifest says: the
host's CA bundle for the init container's pip (a TLS proxy stands between it and PyPI), the
eval packages only for the interpreters that have wheels for them (not the 3.13t stand-in),
a restart policy podman 4.3 can run init containers under, and the port published on
loopback only, without the Service (podman 4.3 would publish both on all of the host's
addresses), for one replica.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.image import engine

POD_PREFIX = "snekbox-pod"  # podman names a Deployment's pod <name>-pod (4.3: <name>-pod-0)


def pods() -> list[str]:
    listing = engine.podman("pod", "ps", "--format", "{{.Name}}")
    return [name for name in listing.stdout.split() if name.startswith(POD_PREFIX)]


def manifest_for_this_network(path: Path, host_port: int) -> list[dict[str, Any]]:
    documents = list(yaml.safe_load_all((engine.REPO / "deployment.yaml").read_text()))
    (deployment,) = (doc for doc in documents if doc["kind"] == "Deployment")
    # podman 4.3 publishes every containerPort on all of the host's addresses (and would take
    # the Service's port too): the played copy publishes it on a free loopback port instead.
    documents = [deployment]
    deployment["spec"]["replicas"] = 1  # one pod per replica, all on the same host port
    pod = deployment["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    (port,) = server["ports"]
    port.update(hostIP="127.0.0.1", hostPort=host_port)
    # podman 4.3 gives init containers the pod's restart policy, so under Always (what a
    # Deployment must have) the init container restarts forever and the pod never starts.
    pod["restartPolicy"] = "OnFailure"
    pod["volumes"].append(
        {"name": "host-ca", "hostPath": {"path": str(engine.HOST_CA_BUNDLE), "type": "File"}}
    )
    for init in pod["initContainers"]:
        assert init["command"][-1] == "--only-eval-deps", init["command"]
        init["command"] += engine.EVAL_PACKAGE_INTERPRETERS
        init.setdefault("volumeMounts", []).append(
            {"name": "host-ca", "mountPath": engine.BUILD_CA_PATH, "readOnly": True}
        )
        init.setdefault("env", []).append({"name": "PIP_CERT", "value": engine.BUILD_CA_PATH})
    path.write_text(yaml.safe_dump_all(documents))
    return documents


@pytest.fixture(scope="module")
def pod_address(
    production_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    played = tmp_path_factory.mktemp("kube") / "deployment.yaml"
    host_port = engine.free_port()
    manifest_for_this_network(played, host_port)
    volumes_before = set(engine.podman("volume", "ls", "--format", "{{.Name}}").stdout.split())
    try:
        engine.podman("kube", "play", str(played), timeout=1800)
        (pod,) = pods()
        address = ("127.0.0.1", host_port)
        engine.wait_until_healthy(
            address, lambda: engine.podman("pod", "logs", pod, check=False).stdout[-8000:]
        )
        yield address
    finally:
        engine.podman("kube", "down", str(played), check=False, timeout=180)
        for pod in pods():
            engine.podman("pod", "rm", "--force", "--ignore", pod)
        after = set(engine.podman("volume", "ls", "--format", "{{.Name}}").stdout.split())
        for volume in after - volumes_before:  # the pod's emptyDir
            engine.podman("volume", "rm", "--force", volume)


def test_pod_serves_numpy_installed_by_the_init_container(pod_address: tuple[str, int]) -> None:
    job = engine.eval_job("import numpy\nprint(numpy.arange(10).sum())")
    answer = engine.request(pod_address, "POST", "/eval", job)
    assert answer.status == 200
    assert engine.bot_view(answer.json) == {"stdout": "45\n", "returncode": 0, "files": []}


def test_pod_runs_the_free_threaded_interpreter(pod_address: tuple[str, int]) -> None:
    job = engine.eval_job("import sys\nprint(sys._is_gil_enabled())", interpreter="3.13t")
    answer = engine.request(pod_address, "POST", "/eval", job)
    assert engine.bot_view(answer.json) == {"stdout": "False\n", "returncode": 0, "files": []}


def test_pod_probes_answer(pod_address: tuple[str, int]) -> None:
    documents = list(yaml.safe_load_all((engine.REPO / "deployment.yaml").read_text()))
    (deployment,) = (doc for doc in documents if doc["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    for probe in ("readinessProbe", "livenessProbe"):
        path = container[probe]["httpGet"]["path"]
        answer = engine.request(pod_address, "GET", path)
        assert answer.status == 200, (probe, path, answer.body)
