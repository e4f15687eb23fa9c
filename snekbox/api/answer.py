"""The JSON answer to an evaluation, built in one place."""

from __future__ import annotations

from typing import Any

from snekbox.result import EvalResult

__all__ = ["render_answer"]


def render_answer(result: EvalResult, *, details: bool) -> dict[str, Any]:
    """Exactly the original's `stdout`, `returncode` and `files`; with `details`, the usage too."""
    answer: dict[str, Any] = {
        "stdout": result.stdout,
        "returncode": result.returncode,
        "files": [file.as_dict for file in result.files],
    }
    if details:
        answer.update(result.usage())
    return answer
