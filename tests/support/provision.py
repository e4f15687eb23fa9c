"""Helpers for the provisioning tests: running scripts/provision.py as make and the image do."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "provision.py"
# What scripts/provision.py needs of the checkout: itself, its package, and snekbox.layout
# with what importing it runs (the image's build stage copies the same before provisioning).
CHECKOUT_PARTS = ("scripts/provision.py", "snekbox_provision", "snekbox")


def run_provision(*args: str, script: Path = SCRIPT) -> subprocess.CompletedProcess[str]:
    """Run provisioning with the tests' interpreter from the checkout, as `make setup` does."""
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
    )


def copy_provisioning(destination: Path) -> Path:
    """Copy what provisioning runs from into `destination`; return the copied script."""
    for part in CHECKOUT_PARTS:
        source, target = REPO / part, destination / part
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    return destination / "scripts" / "provision.py"
