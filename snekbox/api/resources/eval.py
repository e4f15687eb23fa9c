"""POST /eval: run the posted Python in a sandbox and answer with what it printed and wrote."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

import falcon

from snekbox.api.admission import Admission
from snekbox.api.answer import render_answer
from snekbox.api.body import read_json_body
from snekbox.api.request import RequestParser
from snekbox.services import metrics
from snekbox.services.settings import ApiSettings
from snekbox.services.slots import time_since_arrival

if TYPE_CHECKING:
    from snekbox.limits.table import EvalLimits
    from snekbox.result import EvalResult
    from snekbox.snekio import FileAttachment

__all__ = ["EvalResource", "Runner"]

log = logging.getLogger(__name__)


class Runner(Protocol):
    """What the API needs from the engine: `NsJail`, or a fake in unit tests.

    The engine's config, output cap and memfs size are read where present (see
    `snekbox.services.engine_facts`).
    """

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
        parser: RequestParser,
        admission: Admission,
        settings: ApiSettings,
    ) -> None:
        self.nsjail = nsjail
        self.parser = parser
        self.admission = admission
        self.settings = settings

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Parse the request, take its run slots, run, and answer with the result."""
        # Queue time already spent waiting for a thread; the body's upload is the client's time.
        queued = time_since_arrival(req.env)
        body = read_json_body(
            req, max_size=self.settings.max_body_size, timeout=self.settings.body_timeout
        )
        request = self.parser.parse(body)
        log.debug(
            "Evaluating %d args, %d files, executable %s, limits %s",
            len(request.args),
            len(request.files),
            request.executable_path or "(default)",
            request.limits or "(default)",
        )
        with self.admission.admit(request.limits, queued):
            result = self.nsjail.python3(request.args, request.files, **request.engine_options())
        metrics.record_eval(result)
        resp.media = render_answer(result, details=request.details)
