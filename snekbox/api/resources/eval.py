"""POST /eval: run the posted Python in a sandbox and answer with what it printed and wrote."""

from __future__ import annotations

import logging
import math
import os
import stat
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import falcon

from snekbox.api import metrics
from snekbox.api.body import read_json_body
from snekbox.api.errors import (
    EXECUTABLE_MISSING_TITLE,
    EXECUTABLE_NOT_EXECUTABLE_TITLE,
    EXECUTABLE_NOT_FILE_TITLE,
)
from snekbox.api.limits import LimitPolicy
from snekbox.api.settings import ApiSettings
from snekbox.api.slots import NoSlotAvailableError, RunSlots, time_since_arrival
from snekbox.api.validation import bounded_repr, parse_eval_request
from snekbox.limits.table import config_defaults

if TYPE_CHECKING:
    from snekbox.config_pb2 import NsJailConfig
    from snekbox.nsjail import EvalLimits
    from snekbox.result import EvalResult
    from snekbox.snekio import FileAttachment

__all__ = ["EvalResource", "Runner"]

log = logging.getLogger(__name__)


class Runner(Protocol):
    """What the API needs from the engine: `NsJail`, or a fake in unit tests."""

    config: NsJailConfig
    """The NsJail config, for the default limits a run gets."""
    max_output_size: int

    def python3(
        self,
        py_args: Sequence[str],
        files: Iterable[FileAttachment] = (),
        nsjail_args: Sequence[str] = (),
        executable_path: str = ...,
        *,
        limits: EvalLimits | None = None,
    ) -> EvalResult:
        """Run one sandboxed Python program to completion."""
        ...


def check_executable(path: str, root: str) -> None:
    """Raise a 400 unless `path` is an executable regular file under the interpreter `root`.

    Any other path gets one answer, whether or not it exists, so the check tells a client
    nothing about the host's files. Under `root`, which the jail also sees read-only, the
    original's three titles turn a wrong interpreter into a clear 400 instead of a fatal
    NsJail error.
    """
    shown = bounded_repr(path, 120)
    if not _is_under(path, root):
        raise falcon.HTTPBadRequest(
            title=EXECUTABLE_MISSING_TITLE,
            description=f"{shown} is not an interpreter of this server; GET /info lists them.",
        )
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # ValueError: NUL or unencodable characters in the path
        raise falcon.HTTPBadRequest(
            title=EXECUTABLE_MISSING_TITLE, description=f"{shown} does not exist on this server."
        ) from None
    if not stat.S_ISREG(mode):
        raise falcon.HTTPBadRequest(
            title=EXECUTABLE_NOT_FILE_TITLE, description=f"{shown} is not a regular file."
        )
    if not os.access(path, os.X_OK):
        raise falcon.HTTPBadRequest(
            title=EXECUTABLE_NOT_EXECUTABLE_TITLE, description=f"{shown} is not executable."
        )


def _is_under(path: str, root: str) -> bool:
    """Whether `path`, as written and with every link resolved, lies below `root`."""
    try:
        written = os.path.normpath(path)
        resolved = os.path.realpath(path)
        real_root = os.path.realpath(root)
    except ValueError:  # NUL in the path
        return False
    return (
        path.startswith("/")
        and os.path.commonpath((written, root)) == os.path.normpath(root)
        and os.path.commonpath((resolved, real_root)) == real_root
        and written != os.path.normpath(root)
    )


class EvalResource:
    """Evaluate Python code in a sandbox; every evaluation is a 200, whatever the code did.

    A request body has `input` (code for `-c`) and/or `args` (the interpreter's arguments),
    optionally `files` to place in the working directory, `executable_path` to pick an
    interpreter and `limits` to change the run's limits within the server's maxima. The answer
    is exactly the original's `{"stdout", "returncode", "files"}`; a request with
    `"details": true` also gets the run's status and usage (`EvalResult.usage`). A null
    returncode means the run could not happen, with the reason in `stdout`. When no run slot
    frees up within the queue timeout, the answer is 429 with `Retry-After`.
    """

    def __init__(
        self,
        nsjail: Runner,
        *,
        settings: ApiSettings | None = None,
        slots: RunSlots | None = None,
        limits: LimitPolicy | None = None,
    ) -> None:
        self.nsjail = nsjail
        self.settings = settings if settings is not None else ApiSettings.from_env()
        self.slots = (
            slots
            if slots is not None
            else RunSlots(self.settings.max_concurrent_runs, self.settings.slots_dir)
        )
        self.limits = (
            limits
            if limits is not None
            else LimitPolicy(
                config_defaults(nsjail.config, nsjail.max_output_size), self.settings.max_limits
            )
        )

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Validate the request, wait for a free sandbox slot, run, and answer with the result."""
        # Queue time already spent waiting for a thread; the body's upload is the client's time.
        queued = time_since_arrival(req.env)
        body = read_json_body(
            req, max_size=self.settings.max_body_size, timeout=self.settings.body_timeout
        )
        request = parse_eval_request(body)
        if request.executable_path is not None:
            check_executable(request.executable_path, self.settings.interpreter_root)

        limits = self.limits.resolve(request.limits)

        log.debug(
            "Evaluating %d args, %d files, executable %s, limits %s",
            len(request.args),
            len(request.files),
            request.executable_path or "(default)",
            request.limits or "(default)",
        )
        # Only what the request set is passed on, so a request without them reaches the
        # engine exactly as it always did.
        options: dict[str, Any] = {}
        if request.executable_path is not None:
            options["executable_path"] = request.executable_path
        if limits is not None:
            options["limits"] = limits

        result = self._run_in_slot(request.args, request.files, options, limits, queued)
        metrics.EVALS.labels(result.status).inc()
        metrics.EVAL_DURATION.observe(result.duration)
        answer: dict[str, Any] = {
            "stdout": result.stdout,
            "returncode": result.returncode,
            "files": [file.as_dict for file in result.files],
        }
        if request.details:
            answer.update(result.usage())
        resp.media = answer

    def _run_in_slot(
        self,
        args: list[str],
        files: list[FileAttachment],
        options: dict[str, Any],
        limits: EvalLimits | None,
        queued: float = 0.0,
    ) -> EvalResult:
        """Wait for run slots, then run; 429 if none freed up within the queue timeout.

        `queued` is how long the request already waited for a thread: its slot wait gets what
        is left of the queue timeout.
        """
        start = time.monotonic()
        try:
            taken = self.slots.acquire_many(
                self.limits.slots_for(limits), max(0.0, self.settings.queue_timeout - queued)
            )
        except NoSlotAvailableError as error:
            metrics.QUEUE_REJECTIONS.inc()
            raise self._server_full(error) from None
        metrics.QUEUE_WAIT.observe(queued + time.monotonic() - start)
        metrics.RUN_SLOTS_IN_USE.inc(len(taken))
        try:
            with metrics.RUNS_IN_FLIGHT.track_inprogress():
                return self.nsjail.python3(args, files, **options)
        finally:
            metrics.RUN_SLOTS_IN_USE.dec(len(taken))
            self.slots.release_many(taken)

    def _server_full(self, error: NoSlotAvailableError) -> falcon.HTTPTooManyRequests:
        """The 429 for a request that found every slot busy for the whole queue timeout.

        `Retry-After` is the default time limit: by then every default run that held a slot
        when this request gave up has ended.
        """
        retry_after = max(1, math.ceil(self.limits.defaults.time or 1))
        log.info("Every run slot stayed busy for %.1f s; answering 429", error.waited)
        return falcon.HTTPTooManyRequests(
            description=f"No sandbox slot became free within {self.settings.queue_timeout:g} "
            f"seconds (this server runs {self.slots.count} at once); retry after {retry_after} "
            "seconds.",
            retry_after=retry_after,
        )
