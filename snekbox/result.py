"""What one evaluation produced, as plain data the API and the CLI serialise."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from snekbox.snekio import FileAttachment

__all__ = ("EvalError", "EvalResult")


class EvalError(RuntimeError):
    """A run could not happen or its output could not be read.

    The message is a one-line reason that clients show as the run's stdout, so it is phrased
    for a user, e.g. ``"ValueError: embedded null byte"``.
    """


class EvalResult(subprocess.CompletedProcess[str]):
    """A finished evaluation: its merged output, its return code and the files it wrote.

    ``stderr`` is always ``None`` because the program's stderr is merged into ``stdout`` in the
    order it was written. ``returncode`` is ``None`` when the run could not happen; ``stdout``
    then holds the reason.
    """

    def __init__(
        self,
        args: Sequence[str],
        returncode: int | None,
        stdout: str,
        files: list[FileAttachment] | None = None,
    ) -> None:
        super().__init__(list(args), returncode, stdout, None)  # type: ignore[arg-type]
        self.files: list[FileAttachment] = files if files is not None else []

    @classmethod
    def failed(cls, args: Sequence[str], reason: str) -> EvalResult:
        """Build the result of a run that could not happen (``returncode`` is ``None``)."""
        return cls(args, None, reason)

    def __repr__(self) -> str:
        return (
            f"EvalResult(returncode={self.returncode!r}, stdout={self.stdout[:80]!r}, "
            f"files={[f.path for f in self.files]!r})"
        )
