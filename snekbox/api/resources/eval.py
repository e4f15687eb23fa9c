"""POST /eval: run the posted Python in a sandbox and answer with what it printed and wrote."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

import falcon

from snekbox.api.body import read_json_body
from snekbox.api.errors import (
    EXECUTABLE_MISSING_TITLE,
    EXECUTABLE_NOT_EXECUTABLE_TITLE,
    EXECUTABLE_NOT_FILE_TITLE,
)
from snekbox.api.settings import ApiSettings
from snekbox.api.slots import RunSlots
from snekbox.api.validation import bounded_repr, parse_eval_request

if TYPE_CHECKING:
    from snekbox.result import EvalResult
    from snekbox.snekio import FileAttachment

__all__ = ["EvalResource", "Runner"]

log = logging.getLogger(__name__)


class Runner(Protocol):
    """What the resource needs from the engine: `NsJail`, or a fake in unit tests."""

    def python3(
        self,
        py_args: Sequence[str],
        files: Iterable[FileAttachment] = (),
        nsjail_args: Sequence[str] = (),
        executable_path: str = ...,
    ) -> EvalResult:
        """Run one sandboxed Python program to completion."""
        ...


def check_executable(path: str) -> None:
    """Raise a 400 unless `path` is an executable regular file on this host.

    The sandbox sees the host's /snekbin read-only, so the host's view answers for the jail's;
    checking here turns a missing interpreter into a clear 400 instead of a fatal NsJail error.
    """
    shown = bounded_repr(path, 120)
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


class EvalResource:
    """Evaluate Python code in a sandbox; every evaluation is a 200, whatever the code did.

    A request body has `input` (code for `-c`) and/or `args` (the interpreter's arguments),
    optionally `files` to place in the working directory and `executable_path` to pick an
    interpreter. The answer is `{"stdout", "returncode", "files"}`; a null returncode means
    the run could not happen, with the reason in `stdout`.
    """

    def __init__(
        self,
        nsjail: Runner,
        *,
        settings: ApiSettings | None = None,
        slots: RunSlots | None = None,
    ) -> None:
        self.nsjail = nsjail
        self.settings = settings if settings is not None else ApiSettings.from_env()
        self.slots = (
            slots
            if slots is not None
            else RunSlots(self.settings.max_concurrent_runs, self.settings.slots_dir)
        )

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Validate the request, wait for a free sandbox slot, run, and answer with the result."""
        body = read_json_body(
            req, max_size=self.settings.max_body_size, timeout=self.settings.body_timeout
        )
        request = parse_eval_request(body)
        if request.executable_path is not None:
            check_executable(request.executable_path)

        log.debug(
            "Evaluating %d args, %d files, executable %s",
            len(request.args),
            len(request.files),
            request.executable_path or "(default)",
        )
        options = (
            {} if request.executable_path is None else {"executable_path": request.executable_path}
        )
        with self.slots.slot():
            result = self.nsjail.python3(request.args, request.files, **options)

        resp.media = {
            "stdout": result.stdout,
            "returncode": result.returncode,
            "files": [file.as_dict() for file in result.files],
        }
