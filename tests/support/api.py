"""Stand-ins for API tests: a fake runner, and run slots held from another process."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snekbox.config_pb2 import NsJailConfig
from snekbox.jail_config import read_config
from snekbox.result import EvalResult
from snekbox.services.slots import RunSlots
from snekbox.snekio import FileAttachment

SMALL_BODY_LIMIT = 64 * 1024
REPO = Path(__file__).resolve().parents[2]
# The deployed NsJail config, so default limits in /info and slot weights are the real ones.
NSJAIL_CONFIG = read_config(REPO / "config" / "snekbox.cfg")


@dataclass
class FakeRunner:
    """Stands in for NsJail: records each call and answers with `result` (or raises `error`)."""

    result: EvalResult = field(default_factory=lambda: EvalResult([], 0, "hi\n"))
    error: Exception | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    hook: Callable[[], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    config: NsJailConfig = field(default_factory=lambda: NSJAIL_CONFIG)
    max_output_size: int = 1_000_000

    def python3(
        self,
        py_args: Sequence[str],
        files: Iterable[FileAttachment] = (),
        nsjail_args: Sequence[str] = (),
        **kwargs: Any,
    ) -> EvalResult:
        with self.lock:
            self.calls.append(
                {"py_args": list(py_args), "files": list(files), "nsjail_args": nsjail_args}
                | kwargs
            )
        if self.hook is not None:
            self.hook()
        if self.error is not None:
            raise self.error
        return self.result


def _hold_slots(lock_dir: str, total: int, weight: int, seconds: float, ready: Any) -> None:
    with RunSlots(total, lock_dir).slot(weight=weight):
        ready.set()
        time.sleep(seconds)


def start_slot_holder(
    lock_dir: Path, *, total: int, weight: int, seconds: float
) -> multiprocessing.process.BaseProcess:
    """Hold ``weight`` of ``total`` run slots from another process, as another worker would.

    Returns once the slots are held; the caller joins (or kills) the process.
    """
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    holder = context.Process(
        target=_hold_slots, args=(str(lock_dir), total, weight, seconds, ready)
    )
    holder.start()
    assert ready.wait(5), "the holder process never got its slots"
    return holder
