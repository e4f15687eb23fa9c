"""The WSGI application's routes and JSON-only errors, around the engine it is given.

`create_app` builds an app around any runner (tests pass a fake one); `SnekAPI` in
`snekbox.api.snekapi` is the production app, which builds its own `NsJail`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import falcon

from snekbox.api import metrics
from snekbox.api.health import HealthCheck, sandbox_probe
from snekbox.api.interpreters import Interpreter
from snekbox.api.limits import LimitPolicy
from snekbox.api.resources import (
    EvalResource,
    HealthResource,
    InfoResource,
    MetricsResource,
    OpenAPIResource,
)
from snekbox.api.resources.eval import Runner
from snekbox.api.resources.openapi import load_openapi
from snekbox.api.settings import ApiSettings
from snekbox.api.slots import RunSlots
from snekbox.limits.table import config_defaults
from snekbox.nsjail import EvalLimits

__all__ = ["APP_OPTIONS", "create_app", "mount_routes"]

log = logging.getLogger(__name__)

# Options every snekbox app is built with: JSON in and out, and no CORS (no browser clients).
APP_OPTIONS: dict[str, Any] = {"media_type": falcon.MEDIA_JSON, "cors_enable": False}


def _describe(req: falcon.Request, error: falcon.HTTPError) -> str:
    """A sentence for errors Falcon raises without a description (unknown route, bad method)."""
    if error.description:
        return error.description
    if error.status_code == 404:
        return f"There is no resource at {req.path}."
    if error.status_code == 405:
        allowed = (error.headers or {}).get("Allow", "")
        return f"{req.method} is not allowed on {req.path}; allowed methods: {allowed}."
    return error.title


def serialize_error(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
    """Answer every error as `{"title", "description"}` JSON, whatever the client accepts.

    Falcon's default serializer picks XML or no body for some Accept headers, and the bot's
    HTTP client rejects any response that is not application/json.
    """
    body = {"title": error.title, "description": _describe(req, error)}
    resp.content_type = falcon.MEDIA_JSON
    resp.data = json.dumps(body).encode()


def handle_unexpected_error(
    req: falcon.Request, resp: falcon.Response, error: Exception, params: dict[str, Any]
) -> None:
    """Log a bug with its traceback and answer 500 without one."""
    log.error("Unexpected error handling %s %s", req.method, req.path, exc_info=error)
    raise falcon.HTTPInternalServerError(
        description="The server failed to handle this request; the error has been logged."
    )


def mount_routes(
    app: falcon.App,
    runner: Runner,
    settings: ApiSettings,
    slots: RunSlots | None,
    interpreters: Sequence[Interpreter],
    defaults: EvalLimits,
) -> None:
    """Install snekbox's routes and error handling on `app`.

    `defaults` are the limits a run gets when the request sets none (see `config_defaults`).
    """
    from snekbox import __version__

    app.set_error_serializer(serialize_error)
    app.add_error_handler(Exception, handle_unexpected_error)
    if slots is None:
        slots = RunSlots(settings.max_concurrent_runs, settings.slots_dir)
    limits = LimitPolicy(defaults, settings.max_limits)
    _warn_about_limits(limits, slots)
    app.add_route("/eval", EvalResource(runner, settings=settings, slots=slots, limits=limits))
    app.add_route(
        "/info",
        InfoResource(
            snekbox_version=__version__,
            api_version=load_openapi()["info"]["version"],
            interpreters=interpreters,
            limits=limits,
            settings=settings,
        ),
    )
    app.add_route("/health", HealthResource(HealthCheck(sandbox_probe(runner))))
    app.add_route("/metrics", MetricsResource())
    app.add_route("/openapi.json", OpenAPIResource())
    metrics.RUN_SLOTS.set(slots.count)


def _warn_about_limits(limits: LimitPolicy, slots: RunSlots) -> None:
    """Say at start-up when the configured maxima cannot be honoured as documented."""
    needed = limits.slots_for(EvalLimits(memory=limits.maxima.memory))
    if needed > slots.count:
        log.warning(
            "A run at the maximum memory limit (%d bytes) needs %d run slots but the server "
            "has %d; such runs take every slot and may pin more memory than the slots were "
            "sized for",
            limits.maxima.memory,
            needed,
            slots.count,
        )


def create_app(
    runner: Runner,
    settings: ApiSettings | None = None,
    slots: RunSlots | None = None,
    *,
    interpreters: Sequence[Interpreter] = (),
) -> falcon.App:
    """Build the API around any runner; tests pass a fake one and need no sandbox."""
    app = falcon.App(**APP_OPTIONS)
    settings = settings if settings is not None else ApiSettings.from_env()
    mount_routes(
        app,
        runner,
        settings,
        slots,
        interpreters,
        config_defaults(runner.config, runner.max_output_size),
    )
    return app
