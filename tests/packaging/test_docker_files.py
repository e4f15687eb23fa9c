"""The image files, checked in seconds by `make test`; `make test-image` builds and runs them.

What a real build and run prove (stages, COPY sources, scripts, entry point, compose and
Kubernetes) lives in tests/image. Here: hadolint, build_python.sh's own checks, that the stage
which provisions has every file provisioning imports, and the few promises a build on this
machine cannot show, because it builds only the interpreters it has sources for (see the
README's Docker section).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BUILD_PYTHON = REPO / "scripts" / "build_python.sh"
# The names clients put in executable_path (the Discord bot offers each of them).
CLIENT_INTERPRETERS = ("3.13", "3.14", "3.14t", "3.14j")


def dockerfile_arg_default(name: str) -> str:
    match = re.search(rf'^ARG {name}="?([^"\n]*)"?$', (REPO / "Dockerfile").read_text(), re.M)
    assert match, f"the Dockerfile has no default for ARG {name}"
    return match.group(1)


def test_hadolint_accepts_the_dockerfile() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    if not hadolint.exists():
        found = shutil.which("hadolint")
        assert found, "hadolint is missing: install requirements/dev.txt (make setup-dev)"
        hadolint = Path(found)
    result = subprocess.run(
        [str(hadolint), "--no-color", str(REPO / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_default_build_offers_every_interpreter_clients_name() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert dockerfile_arg_default("PYTHON_DEFAULT") == "3.14"
    for name in CLIENT_INTERPRETERS:
        switch = f"WITH_PYTHON_{name.replace('.', '_').upper()}"
        assert dockerfile_arg_default(switch) == "1", switch
        assert f"FROM builder-py-base AS builder-py-{name}\n" in dockerfile
        assert f"COPY --from=builder-py-{name} /snekbin/python/ /snekbin/python/\n" in dockerfile


def test_the_dockerfile_uses_only_syntax_every_builder_understands() -> None:
    """No frontend to fetch, no BuildKit-only COPY flags (podman < 5.6 rejects --link)."""
    dockerfile = (REPO / "Dockerfile").read_text()
    assert not re.search(r"^#\s*syntax=", dockerfile, re.M | re.I)
    assert not re.search(r"^(COPY|ADD)\b.*--(link|chmod|parents|exclude)", dockerfile, re.M)
    assert not re.search(r"^RUN\s+--", dockerfile, re.M)


# --- build_python.sh refuses bad input before building anything -------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["3.14", "0" * 64, "/snekbin/python/x"], "is not a CPython version"),
        (["3.14.8", "abc", "/snekbin/python/x"], "is not a SHA-256 hex digest"),
        (["3.14.8", "0" * 64, "relative/prefix"], "must be an absolute path"),
    ],
)
def test_build_python_rejects_bad_arguments(args: list[str], message: str) -> None:
    result = subprocess.run([str(BUILD_PYTHON), *args], capture_output=True, text=True)
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize("source", ["PYTHON_SOURCE_TARBALL", "PYTHON_SOURCE_URL"])
def test_build_python_refuses_a_tarball_with_the_wrong_checksum(
    tmp_path: Path, source: str
) -> None:
    tarball = tmp_path / "Python-3.14.8.tar.xz"
    tarball.write_bytes(b"not the real source")
    value = str(tarball) if source == "PYTHON_SOURCE_TARBALL" else tarball.as_uri()
    result = subprocess.run(
        [str(BUILD_PYTHON), "3.14.8", "0" * 64, str(tmp_path / "prefix")],
        capture_output=True,
        text=True,
        env={**os.environ, source: value},
    )
    assert result.returncode != 0
    assert "does not match the SHA-256" in result.stderr
    assert not (tmp_path / "prefix").exists()


# --- the venv stage provisions before snekbox is installed -------------------------------------


def venv_stage_copies() -> list[tuple[list[str], str]]:
    """The venv stage's COPY instructions from the build context, up to its provisioning RUN."""
    stage = (REPO / "Dockerfile").read_text().split("\nFROM base AS venv\n", 1)[1]
    before_provisioning = stage.split("\nRUN python scripts/provision.py", 1)
    assert len(before_provisioning) == 2, "the venv stage no longer runs scripts/provision.py"
    copies = []
    for line in before_provisioning[0].splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(word.startswith("--from=") for word in words):
            copies.append((words[1:-1], words[-1]))
    return copies


def test_the_venv_stage_copies_all_that_provisioning_imports(tmp_path: Path) -> None:
    """The stage's files alone run scripts/provision.py, with no site-packages at all."""
    for sources, destination in venv_stage_copies():
        target = tmp_path / destination  # Relative to WORKDIR /snekbox, as in the stage.
        for source in sources:
            if (REPO / source).is_dir():
                ignore = shutil.ignore_patterns("__pycache__")
                shutil.copytree(REPO / source, target, ignore=ignore, dirs_exist_ok=True)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy(REPO / source, target / Path(source).name)
    result = subprocess.run(
        [sys.executable, "-I", "-S", "scripts/provision.py", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "--only-eval-deps" in result.stdout


def test_the_build_context_admits_what_the_venv_stage_copies() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    admitted = [line[1:].rstrip("/") for line in lines if line.startswith("!")]
    for sources, _destination in venv_stage_copies():
        for source in sources:
            path = source.rstrip("/")
            assert any(path == entry or path.startswith(entry + "/") for entry in admitted), (
                f"{source} is copied but .dockerignore leaves it out of the build context"
            )


# --- the init container's command, run natively ----------------------------------------------


def test_native_eval_packages_match_the_init_container_command() -> None:
    """The init container's exact command, with `--check`: every eval package of every
    interpreter imports from /snekbox/user_base as the sandbox user."""
    documents = yaml.safe_load_all((REPO / "deployment.yaml").read_text())
    deployment = next(d for d in documents if d and d.get("kind") == "Deployment")
    (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
    command = init["command"]
    assert command[:2] == ["python", "scripts/provision.py"], command
    result = subprocess.run(
        [sys.executable, str(REPO / command[1]), *command[2:], "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
