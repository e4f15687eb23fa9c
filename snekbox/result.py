"""What one evaluation produced, as plain data the API and the CLI serialise."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from snekbox.limits.run_cgroup import CgroupStats
    from snekbox.snekio import FileAttachment, SkippedFile

__all__ = ("EvalError", "EvalResult", "Status", "decide_status")


class Status(StrEnum):
    """Why a run stopped: the one vocabulary of the `status` field, metrics and documents."""

    OK = "ok"
    ERROR = "error"
    SIGNALED = "signaled"
    TIMED_OUT = "timed_out"
    OUT_OF_MEMORY = "out_of_memory"
    OUTPUT_LIMIT = "output_limit"
    PIDS_LIMIT = "pids_limit"
    FAILED = "failed"


class EvalError(RuntimeError):
    """A run could not happen or its output could not be read.

    The message is a one-line reason that clients show as the run's stdout, so it is phrased
    for a user, e.g. ``"ValueError: embedded null byte"``.
    """


class EvalResult(subprocess.CompletedProcess[str]):
    """A finished evaluation: its merged output, its return code and the files it wrote.

    A real run's ``stderr`` is ``None`` because the program's stderr is merged into ``stdout``
    in the order it was written (the argument exists for the original's signature).
    ``returncode`` is ``None`` when the run could not happen; ``stdout`` then holds the
    reason. The remaining attributes describe the run for operators:
    ``status`` says why it stopped (see ``decide_status``), ``duration`` is wall
    seconds, ``cpu_time`` user+system seconds, ``memory_peak`` bytes (``None`` where unknown).
    """

    def __init__(
        self,
        args: Sequence[str],
        returncode: int | None,
        stdout: str = "",
        stderr: str | None = None,
        files: list[FileAttachment] | None = None,
        *,
        status: str | None = None,
        duration: float = 0.0,
        cpu_time: float | None = None,
        memory_peak: int | None = None,
        stdout_truncated: bool = False,
        files_skipped: list[SkippedFile] | None = None,
        files_skipped_more: int = 0,
    ) -> None:
        super().__init__(list(args), returncode, stdout, stderr)  # type: ignore[arg-type]
        self.files: list[FileAttachment] = files if files is not None else []
        if status is None:
            status = (
                Status.FAILED
                if returncode is None
                else (Status.OK if returncode == 0 else Status.ERROR)
            )
        self.status = status
        self.duration = duration
        self.cpu_time = cpu_time
        self.memory_peak = memory_peak
        self.stdout_truncated = stdout_truncated
        self.files_skipped: list[SkippedFile] = files_skipped if files_skipped is not None else []
        self.files_skipped_more = files_skipped_more

    @classmethod
    def failed(cls, args: Sequence[str], reason: str, duration: float = 0.0) -> EvalResult:
        """Build the result of a run that could not happen (``returncode`` is ``None``)."""
        return cls(args, None, reason, status=Status.FAILED, duration=duration)

    def usage(self) -> dict[str, Any]:
        """The outcome and resource fields added to each response beyond the original API."""
        return {
            "status": self.status,
            "duration": round(self.duration, 6),
            "cpu_time": None if self.cpu_time is None else round(self.cpu_time, 6),
            "memory_peak": self.memory_peak,
            "stdout_truncated": self.stdout_truncated,
            "files_skipped": [{"path": s.path, "reason": s.reason} for s in self.files_skipped],
            "files_skipped_more": self.files_skipped_more,
        }

    def summary(self) -> str:
        """One line for logs and the CLI's ``--stats``."""
        peak = "?" if self.memory_peak is None else f"{self.memory_peak / 1024**2:.1f} MiB"
        cpu = "?" if self.cpu_time is None else f"{self.cpu_time:.3f} s"
        return (
            f"status={self.status} returncode={self.returncode} duration={self.duration:.3f} s "
            f"cpu_time={cpu} memory_peak={peak} files={len(self.files)} "
            f"skipped={len(self.files_skipped) + self.files_skipped_more} "
            f"truncated={self.stdout_truncated}"
        )

    def __repr__(self) -> str:
        return (
            f"EvalResult(returncode={self.returncode!r}, status={self.status!r}, "
            f"stdout={self.stdout[:80]!r}, files={[f.path for f in self.files]!r})"
        )


def decide_status(
    returncode: int | None,
    truncated: bool,
    log_lines: Sequence[str],
    stats: CgroupStats,
    timed_out: bool = False,
) -> Status:
    """Say why a run stopped, from facts only, in this order of precedence.

    - ``failed``: no return code (the run could not happen or its output was unreadable).
    - ``output_limit``: snekbox stopped the run because its output passed the cap.
    - ``ok``: exit status 0, even if a child process was killed along the way.
    - ``timed_out``: snekbox stopped the run at its time limit, or NsJail logged "run time >=
      time limit" (its later backstop); both kill with SIGKILL.
    - ``out_of_memory``: killed by SIGKILL while the run's cgroup counted an OOM kill or its
      memory peak reached the limit (see ``snekbox.limits.run_cgroup``).
    - ``pids_limit``: the program failed after the run's cgroup refused a fork at the pids
      limit or its process count reached the limit.
    - ``signaled``: the program died from a signal (return code above 128, or 255 never).
    - ``error``: any other non-zero exit, including 255 when NsJail itself failed.
    """
    if returncode is None:
        return Status.FAILED
    if truncated:
        return Status.OUTPUT_LIMIT
    if returncode == 0:
        return Status.OK
    if timed_out or any("run time >= time limit" in line for line in log_lines):
        return Status.TIMED_OUT
    if stats.oom_kills > 0 or (returncode == 128 + signal.SIGKILL and stats.out_of_memory):
        return Status.OUT_OF_MEMORY
    if stats.out_of_pids:
        return Status.PIDS_LIMIT
    if 128 < returncode < 255:
        return Status.SIGNALED
    return Status.ERROR
