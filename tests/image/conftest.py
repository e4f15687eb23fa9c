"""The image suite: builds the images from the real Dockerfile and runs them with podman.

It runs only when named (`make test-image`, or `pytest tests/image`): a cold build compiles
CPython twice. It needs root, prepares the host itself (scripts/prepare_image_host.sh) and
fails, never skips, when something is missing. At the end it checks that it left no
container, volume or dangling image behind.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.image import engine

HERE = Path(__file__).resolve().parent
BUILDS = pytest.StashKey[list[engine.Build]]()
log = logging.getLogger(__name__)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave the image suite out of a plain `pytest` run unless it was asked for by path."""
    if HERE not in (collection_path, *collection_path.parents):
        return None
    asked = [Path(arg.split("::")[0]).resolve() for arg in config.args]
    return not any(path == HERE or HERE in path.parents for path in asked)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[BUILDS] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    builds = terminalreporter.config.stash.get(BUILDS, [])
    if builds:
        terminalreporter.section("image builds")
        for build in builds:
            terminalreporter.write_line(f"{build.tag}: {build.seconds:.0f} s ({build.log_path})")


@pytest.fixture(scope="session")
def log_dir() -> Path:
    """Build logs stay after the run (they are small and explain a failed build)."""
    path = engine.CACHE / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def host() -> dict[str, str]:
    return engine.prepare_host()


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind(host: dict[str, str]) -> Iterator[None]:
    """After the session: no container, pod or volume of snekbox's, and no dangling image."""
    yield
    engine.prune_dangling_images()
    listings = {
        "containers": engine.podman("ps", "--all", "--format", "{{.Names}}"),
        "pods": engine.podman("pod", "ps", "--format", "{{.Name}}"),
        "volumes": engine.podman("volume", "ls", "--format", "{{.Name}}"),
    }
    for kind, listing in listings.items():
        left = [name for name in listing.stdout.split() if name.startswith("snekbox")]
        assert not left, f"{kind} left behind: {left}"
    # Build containers have no name of ours; any left here pins an image (a build was killed).
    builders = engine.podman("ps", "--all", "--external", "--format", "{{.Names}}").stdout.split()
    assert not builders, f"build containers left behind (buildah rm them): {builders}"
    dangling = engine.podman("images", "--filter", "dangling=true", "--format", "{{.ID}}")
    assert not dangling.stdout.split(), f"dangling images left: {dangling.stdout}"


@pytest.fixture(scope="session")
def production_image(host: dict[str, str], log_dir: Path, request: pytest.FixtureRequest) -> str:
    build = engine.build_image(host, engine.PRODUCTION_TAG, dev=False, log_dir=log_dir)
    request.config.stash[BUILDS].append(build)
    return build.tag


@pytest.fixture(scope="session")
def dev_image(host: dict[str, str], log_dir: Path, request: pytest.FixtureRequest) -> str:
    build = engine.build_image(host, engine.DEV_TAG, dev=True, log_dir=log_dir)
    request.config.stash[BUILDS].append(build)
    return build.tag


@pytest.fixture(scope="session")
def eval_packages_volume(production_image: str) -> Iterator[str]:
    """The README's recipe: the eval packages installed once into a volume of their own."""
    name = f"{engine.NAME_PREFIX}-eval-packages"
    engine.podman("volume", "rm", "--force", name)
    engine.podman("volume", "create", name)
    try:
        engine.podman(
            "run",
            "--rm",
            "-v",
            f"{name}:/snekbox/user_base",
            *engine.pip_ca_run_args(),
            "--entrypoint",
            "python",
            production_image,
            "scripts/provision.py",
            "--user-base",
            "/snekbox/user_base",
            "--eval-deps",
            "requirements/eval-deps.pip",
            "--only-eval-deps",
            *engine.EVAL_PACKAGE_INTERPRETERS,
            timeout=1800,
        )
        yield name
    finally:
        engine.podman("volume", "rm", "--force", name)


@pytest.fixture
def scratch_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"{engine.NAME_PREFIX}-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
