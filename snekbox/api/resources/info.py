"""GET /info: what this server offers, as found at start-up (no per-request work)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import falcon

from snekbox.jail_config import DEFAULT_EXECUTABLE_PATH
from snekbox.services.interpreters import Interpreter
from snekbox.services.limit_policy import LimitPolicy
from snekbox.services.settings import ApiSettings

__all__ = ["InfoResource"]


class InfoResource:
    """Versions, interpreters with their packages, limits and concurrency, serialised once."""

    def __init__(
        self,
        *,
        snekbox_version: str,
        api_version: str,
        interpreters: Sequence[Interpreter],
        limits: LimitPolicy,
        settings: ApiSettings,
    ) -> None:
        document: dict[str, Any] = {
            "snekbox_version": snekbox_version,
            "api_version": api_version,
            "default_executable_path": DEFAULT_EXECUTABLE_PATH,
            "interpreters": [interpreter.as_dict() for interpreter in interpreters],
            "limits": limits.describe(),
            "concurrency": {
                "max_concurrent_runs": settings.max_concurrent_runs,
                "queue_timeout": settings.queue_timeout,
            },
        }
        self.body = json.dumps(document).encode()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Answer with the document built at start-up."""
        resp.content_type = falcon.MEDIA_JSON
        resp.data = self.body
