"""deployment.yaml against the Kubernetes API schemas, and against the server it deploys.

kubernetes-validate ships the JSON schemas of every Kubernetes release it knows inside its
wheel, so this runs offline (one test proves it by refusing every connection). Strict mode
also refuses fields a schema does not know, the mistake a typo in a manifest usually is.
"""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from snekbox.services import metrics

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = [REPO / "deployment.yaml"]
# The oldest release still supported upstream when this was written, and the newest known.
KUBERNETES_VERSIONS = ("1.32.0", kubernetes_validate.latest_version())
GRACE_MARGIN = 5  # seconds past the preStop sleep and Gunicorn's drain


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind(kind: str) -> dict[str, Any]:
    [found] = [doc for doc in documents(REPO / "deployment.yaml") if doc["kind"] == kind]
    return found


def snekbox_container() -> dict[str, Any]:
    pod = by_kind("Deployment")["spec"]["template"]["spec"]
    [container] = [c for c in pod["containers"] if c["name"] == "snekbox"]
    return container


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_manifest_matches_the_kubernetes_schemas(path: Path, version: str) -> None:
    kinds = []
    for document in documents(path):
        kubernetes_validate.validate(document, version, strict=True)
        kinds.append(document["kind"])
    assert sorted(kinds) == [
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Service",
    ]


def test_validation_needs_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for document in documents(REPO / "deployment.yaml"):
        kubernetes_validate.validate(document, KUBERNETES_VERSIONS[0], strict=True)


@pytest.mark.parametrize(
    ("kind", "breakage"),
    [
        ("HorizontalPodAutoscaler", lambda d: d["spec"].update(minReplicas="three")),
        ("PodDisruptionBudget", lambda d: d["spec"].update(maxUnavailabel=1)),
        ("Deployment", lambda d: d["spec"]["template"]["spec"].update(topologySpread=[])),
    ],
    ids=["wrong type", "misspelt field", "unknown field"],
)
def test_the_validator_catches_a_broken_manifest(kind: str, breakage: Any) -> None:
    broken = copy.deepcopy(by_kind(kind))
    breakage(broken)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def test_the_autoscaler_reads_the_metric_the_server_exports() -> None:
    hpa = by_kind("HorizontalPodAutoscaler")
    deployment = by_kind("Deployment")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    [metric] = hpa["spec"]["metrics"]
    assert metric["pods"]["metric"]["name"] == metrics.RUN_SLOT_UTILIZATION
    assert hpa["spec"]["minReplicas"] >= 2  # one pod's restart is never an outage


def test_the_disruption_budget_covers_the_pods() -> None:
    pdb = by_kind("PodDisruptionBudget")
    labels = by_kind("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_readiness_is_health_and_liveness_needs_no_sandbox() -> None:
    container = snekbox_container()
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["livenessProbe"]["httpGet"]["path"] == "/info"


def gunicorn_graceful_timeout(tmp_path: Path) -> int:
    """graceful_timeout as config/gunicorn.conf.py computes it, with the default settings.

    The config prepares temp directories when it is read, so it is read in a child whose
    TMPDIR is the test's own.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SNEKBOX_", "PROMETHEUS_"))
    }
    env["TMPDIR"] = str(tmp_path)
    code = "import runpy; print(runpy.run_path('config/gunicorn.conf.py')['graceful_timeout'])"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().splitlines()[-1])


def test_termination_grace_covers_the_servers_drain(tmp_path: Path) -> None:
    pod = by_kind("Deployment")["spec"]["template"]["spec"]
    pre_stop = snekbox_container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain = int(pre_stop[1]) + gunicorn_graceful_timeout(tmp_path)
    assert pod["terminationGracePeriodSeconds"] == drain + GRACE_MARGIN


def test_pods_spread_over_nodes() -> None:
    pod = by_kind("Deployment")["spec"]["template"]["spec"]
    labels = by_kind("Deployment")["spec"]["template"]["metadata"]["labels"]
    keys = {c["topologyKey"]: c for c in pod["topologySpreadConstraints"]}
    spread = keys["kubernetes.io/hostname"]
    assert spread["maxSkew"] == 1 and spread["whenUnsatisfiable"] == "DoNotSchedule"
    assert spread["labelSelector"]["matchLabels"].items() <= labels.items()
