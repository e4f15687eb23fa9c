"""The image files, checked without a Docker engine: none runs where snekbox is tested.

`scripts/check_docker.py` parses the Dockerfile, docker-compose.yml and deployment.yaml; these
tests run it on the repository, prove on a scratch copy that it catches each kind of breakage,
lint the Dockerfile with hadolint, and run the native provisioning step with the options the
image passes to it, so what the native tests prove is what the image does.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CONTEXT_ITEMS = (
    ".dockerignore",
    "Dockerfile",
    "LICENSE",
    "README.md",
    "config",
    "deployment.yaml",
    "docker-compose.yml",
    "pyproject.toml",
    "requirements",
    "scripts",
    "snekbox",
)
# The two ways the Dockerfile's RUN finishes the provisioning command line.
PRODUCTION_EVAL_OPTIONS = ["--skip-eval-deps"]
DEV_EVAL_OPTIONS = ["--eval-deps", "requirements/eval-deps.pip"]


def load_script(name: str) -> ModuleType:
    """Import a file of scripts/ as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


check_docker = load_script("check_docker")


@pytest.fixture
def context(tmp_path: Path) -> Path:
    """A scratch copy of the build context and the deployment files, modes preserved."""
    root = tmp_path / "repo"
    root.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache")
    for item in CONTEXT_ITEMS:
        source = REPO / item
        if source.is_dir():
            shutil.copytree(source, root / item, ignore=ignore)
        elif source.exists():
            shutil.copy2(source, root / item)
    return root


def problems_in(root: Path) -> list[str]:
    problems, _ = check_docker.check(root)
    return problems.items


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path.name}; update this test"
    path.write_text(text.replace(old, new, 1))


def assert_new_problem(root: Path, change: Callable[[], None], expected: str) -> None:
    """Apply a breaking change to the copy and require a problem that mentions `expected`."""
    before = set(problems_in(root))
    change()
    new = [p for p in problems_in(root) if p not in before]
    assert any(expected in p for p in new), f"no problem mentioning {expected!r} in {new}"


# --- the repository itself ---------------------------------------------------------------------


def test_repository_files_pass_the_checker() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "check_docker.py")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "look right" in result.stdout


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


def test_the_image_offers_every_interpreter_clients_name() -> None:
    _, report = check_docker.check(REPO)
    assert report is not None
    stage_names = {stage.name for stage in report.dockerfile.stages}
    for version in ("3.13", "3.14", "3.14t", "3.14j"):
        assert f"builder-py-{version}" in stage_names
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "--disable-gil" in dockerfile
    assert "--enable-experimental-jit" in dockerfile


# --- the checker catches breakage (on a scratch copy) ------------------------------------------


def test_missing_copy_source_fails(context: Path) -> None:
    assert_new_problem(
        context,
        lambda: (context / "scripts" / "build_python.sh").unlink(),
        "source 'scripts/build_python.sh' does not exist",
    )


def test_copy_source_excluded_by_dockerignore_fails(context: Path) -> None:
    assert_new_problem(
        context,
        lambda: edit(context / ".dockerignore", "!requirements/\n", ""),
        "'requirements' is excluded by .dockerignore",
    )


def test_copy_from_a_missing_stage_fails(context: Path) -> None:
    assert_new_problem(
        context,
        lambda: edit(context / "Dockerfile", "AS builder-py-3.14t", "AS builder-py-nogil"),
        "COPY --from=builder-py-3.14t names no stage",
    )


def test_copy_from_a_later_stage_fails(context: Path) -> None:
    assert_new_problem(
        context,
        lambda: edit(context / "Dockerfile", "--from=builder-py-3.13 ", "--from=snekbox "),
        "COPY --from=snekbox names a stage that comes later",
    )


def test_copy_of_a_path_the_builder_never_made_fails(context: Path) -> None:
    def build_elsewhere() -> None:
        dockerfile = context / "Dockerfile"
        edit(
            dockerfile,
            '"$PYTHON_3_14_SHA256" /snekbin/python/3.14t',
            '"$PYTHON_3_14_SHA256" /opt/t',
        )
        edit(dockerfile, "&& /snekbin/python/3.14t/bin/python", "&& /opt/t/bin/python")

    assert_new_problem(
        context,
        build_elsewhere,
        "COPY --from=builder-py-3.14t /snekbin/python/3.14t: no instruction of stage",
    )


def test_from_an_undefined_stage_fails(context: Path) -> None:
    assert_new_problem(
        context,
        lambda: edit(
            context / "Dockerfile",
            "FROM builder-py-base AS builder-py-3.14j",
            "FROM builder-base AS builder-py-3.14j",
        ),
        "FROM builder-base is neither an earlier stage",
    )


def test_duplicate_stage_name_fails(context: Path) -> None:
    assert_new_problem(
        context,
        lambda: edit(context / "Dockerfile", "AS builder-py-3.14t", "AS builder-py-3.14"),
        "stage name 'builder-py-3.14' is used twice",
    )


def test_non_executable_script_fails(context: Path) -> None:
    script = context / "scripts" / "build_python.sh"
    assert_new_problem(context, lambda: script.chmod(0o644), "which is not executable")


def test_script_run_before_it_is_copied_fails(context: Path) -> None:
    assert_new_problem(
        context,
        lambda: edit(context / "Dockerfile", "COPY scripts/ scripts/\n", ""),
        "no earlier COPY puts it at /snekbox/scripts/provision.py",
    )


def test_shell_syntax_error_in_run_fails(context: Path) -> None:
    assert_new_problem(
        context,
        lambda: edit(context / "Dockerfile", "    fi \\\n    && python", "    && python"),
        "RUN is not valid sh syntax",
    )


def test_arg_without_any_default_fails(context: Path) -> None:
    assert_new_problem(
        context,
        lambda: edit(context / "Dockerfile", "ARG PYTHON_3_13_SHA256=", "ARG PYTHON_3_13_SHA="),
        "ARG PYTHON_3_13_SHA256 has no default",
    )


def test_wrong_entrypoint_fails(context: Path) -> None:
    assert_new_problem(
        context,
        lambda: edit(context / "Dockerfile", 'ENTRYPOINT ["gunicorn"]', "ENTRYPOINT gunicorn"),
        "ENTRYPOINT is None",
    )


def test_config_not_copied_last_fails(context: Path) -> None:
    def copy_config_early() -> None:
        dockerfile = context / "Dockerfile"
        edit(dockerfile, "\nCOPY config/ config/\n", "\n")
        edit(
            dockerfile, "COPY snekbox/ snekbox/\n", "COPY config/ config/\nCOPY snekbox/ snekbox/\n"
        )

    assert_new_problem(context, copy_config_early, "config/ should be the last thing copied")


def test_compose_without_privileges_fails(context: Path) -> None:
    assert_new_problem(
        context,
        lambda: edit(context / "docker-compose.yml", "privileged: true", "privileged: false"),
        "snekbox must be privileged",
    )


def test_compose_with_undeclared_volume_fails(context: Path) -> None:
    assert_new_problem(
        context,
        lambda: edit(context / "docker-compose.yml", "user_base:/snekbox", "userbase:/snekbox"),
        "volume 'userbase' (mounted at /snekbox/user_base) is not declared",
    )


def test_compose_with_unknown_target_or_arg_fails(context: Path) -> None:
    compose = context / "docker-compose.yml"
    assert_new_problem(
        context,
        lambda: edit(compose, "target: snekbox", "target: final"),
        "build.target 'final' is not a stage",
    )
    assert_new_problem(context, lambda: edit(compose, "DEV: ", "DEVEL: "), "build arg DEVEL")


def test_compose_without_port_or_init_fails(context: Path) -> None:
    compose = context / "docker-compose.yml"
    assert_new_problem(context, lambda: edit(compose, '"8060:8060"', '"8060:80"'), "port")
    assert_new_problem(context, lambda: edit(compose, "init: true", "init: false"), "init")


def test_deployment_with_one_replica_fails(context: Path) -> None:
    assert_new_problem(
        context,
        lambda: edit(context / "deployment.yaml", "replicas: 3", "replicas: 1"),
        "replicas is 1",
    )


def test_deployment_init_container_with_missing_script_fails(context: Path) -> None:
    assert_new_problem(
        context,
        lambda: edit(context / "deployment.yaml", "- scripts/provision.py", "- scripts/eval.py"),
        "uses scripts/eval.py, which the image does not contain",
    )


def test_deployment_without_privileges_or_resources_fails(context: Path) -> None:
    deployment = context / "deployment.yaml"
    assert_new_problem(
        context, lambda: edit(deployment, "privileged: true", "privileged: false"), "privileged"
    )
    assert_new_problem(
        context,
        lambda: edit(deployment, "memory: 2Gi", "ephemeral-storage: 2Gi"),
        "sets no memory limits",
    )


def test_service_on_the_wrong_port_fails(context: Path) -> None:
    assert_new_problem(
        context,
        lambda: edit(context / "deployment.yaml", "port: 8060", "port: 80"),
        "the Service must serve port 8060",
    )


# --- .dockerignore semantics ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        ("tests/test_x.py", True),
        (".git/HEAD", True),
        ("scripts/provision.py", False),
        ("snekbox/api/__init__.py", False),
        ("snekbox/__pycache__/nsjail.cpython-311.pyc", True),
        ("snekbox/api/__pycache__/app.cpython-311.pyc", True),
        ("config/snekbox.cfg", False),
    ],
)
def test_dockerignore_is_read_as_docker_reads_it(path: str, ignored: bool) -> None:
    patterns = check_docker.read_dockerignore(REPO / ".dockerignore")
    assert check_docker.is_ignored(path, patterns) is ignored


def test_dockerignore_last_matching_line_wins(tmp_path: Path) -> None:
    ignore_file = tmp_path / ".dockerignore"
    ignore_file.write_text("docs\n!docs/keep.md\n!docs/keep.txt\n**/*.md\n")
    patterns = check_docker.read_dockerignore(ignore_file)
    assert check_docker.is_ignored("docs/other.txt", patterns)
    assert not check_docker.is_ignored("docs/keep.txt", patterns)  # re-included by "!"
    assert check_docker.is_ignored("docs/keep.md", patterns)  # **/*.md comes after the "!"
    assert check_docker.is_ignored("README.md", patterns)
    assert not check_docker.is_ignored("src/app.py", patterns)


def test_dockerignore_star_does_not_cross_directories(tmp_path: Path) -> None:
    ignore_file = tmp_path / ".dockerignore"
    ignore_file.write_text("*.md\n")
    patterns = check_docker.read_dockerignore(ignore_file)
    assert check_docker.is_ignored("README.md", patterns)
    assert not check_docker.is_ignored("docs/guide.md", patterns)


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
    result = subprocess.run(
        [str(REPO / "scripts" / "build_python.sh"), *args], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_build_python_refuses_a_tarball_with_the_wrong_checksum(tmp_path: Path) -> None:
    tarball = tmp_path / "Python-3.14.8.tar.xz"
    tarball.write_bytes(b"not the real source")
    result = subprocess.run(
        [str(REPO / "scripts" / "build_python.sh"), "3.14.8", "0" * 64, str(tmp_path / "prefix")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON_SOURCE_TARBALL": str(tarball)},
    )
    assert result.returncode != 0
    assert "does not match the SHA-256" in result.stderr
    assert not (tmp_path / "prefix").exists()


# --- the provisioning step, run natively with the image's options --------------------------------


def image_provision_args() -> list[str]:
    """The options the Dockerfile passes to scripts/provision.py (exactly one RUN does)."""
    _, report = check_docker.check(REPO)
    assert report is not None
    assert len(report.provision_args) == 1, report.provision_args
    return report.provision_args[0]


def replace_option(args: list[str], name: str, value: str) -> list[str]:
    index = args.index(name)
    return [*args[: index + 1], value, *args[index + 2 :]]


def test_the_dockerfile_offers_both_eval_dependency_choices() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    for options in (PRODUCTION_EVAL_OPTIONS, DEV_EVAL_OPTIONS):
        assert f"set -- {' '.join(options)}" in dockerfile


@pytest.mark.parametrize("eval_options", [PRODUCTION_EVAL_OPTIONS, DEV_EVAL_OPTIONS])
def test_provisioning_accepts_the_image_options(eval_options: list[str]) -> None:
    provision = load_script("provision")
    options = provision.parse_args([*image_provision_args(), *eval_options])
    assert str(options.snekbin) == "/snekbin"
    assert str(options.user_base) == "/snekbox/user_base"
    assert str(options.memfs_root) == "/memfs"
    assert options.interpreters == ["none"]
    assert options.default == "3.14"


def init_container_args() -> list[str]:
    """The options deployment.yaml's init container passes to scripts/provision.py."""
    documents = yaml.safe_load_all((REPO / "deployment.yaml").read_text())
    deployment = next(d for d in documents if d and d.get("kind") == "Deployment")
    (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
    command = [*init.get("command", []), *init.get("args", [])]
    assert command[:2] == ["python", "scripts/provision.py"], command
    return command[2:]


def run_provision_check(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "provision.py"), *args, "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )


def test_provisioning_accepts_the_init_container_options() -> None:
    provision = load_script("provision")
    options = provision.parse_args(init_container_args())
    assert str(options.user_base) == "/snekbox/user_base"
    assert options.only_eval_deps == []  # every interpreter of the image
    assert not options.skip_eval_deps


def test_native_provisioning_succeeds_with_the_image_paths() -> None:
    """`provision.py --check` on this host with the options and paths the image build uses.

    Two options must differ, because they name things only the image has: `--default 3.14`
    becomes this host's default interpreter (the host has no 3.14 build), and
    `--venv-python /venv/bin/python` becomes the venv running these tests.
    """
    default_link = Path("/snekbin/python/default")
    assert default_link.is_symlink(), "the host is not provisioned: run `make setup`"
    args = replace_option(image_provision_args(), "--default", os.readlink(default_link))
    args = replace_option(args, "--venv-python", sys.executable)
    result = run_provision_check([*args, *PRODUCTION_EVAL_OPTIONS])
    assert result.returncode == 0, result.stdout + result.stderr


def test_native_eval_packages_match_the_init_container_command() -> None:
    """The init container's exact command, with `--check`: every eval package of every
    interpreter imports from /snekbox/user_base as the sandbox user."""
    result = run_provision_check(init_container_args())
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_without_a_health_check_fails(context: Path) -> None:
    compose = context / "docker-compose.yml"
    assert_new_problem(
        context,
        lambda: edit(compose, "8060/health'", "8060/info'"),
        "healthcheck.test must request /health on port 8060",
    )
    assert_new_problem(
        context,
        lambda: edit(compose, "    healthcheck:\n", "    x-healthcheck:\n"),
        "needs a healthcheck that asks /health",
    )


def test_deployment_without_a_health_readiness_probe_fails(context: Path) -> None:
    deployment = context / "deployment.yaml"
    assert_new_problem(
        context,
        lambda: edit(deployment, "path: /health", "path: /info"),
        "the readinessProbe asks '/info', not '/health'",
    )
    assert_new_problem(
        context,
        lambda: edit(deployment, "readinessProbe:", "startupProbe:"),
        "needs a readinessProbe with httpGet /health",
    )
