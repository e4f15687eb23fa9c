"""The code base stays formatted and lint-clean (ruff, configured in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, str(ROOT)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_code_is_formatted() -> None:
    result = ruff("format", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_code_passes_lint() -> None:
    result = ruff("check")
    assert result.returncode == 0, result.stdout + result.stderr
