"""The WSGI application: every collaborator built and wired here, then the routes mounted.

`create_app` builds the app around any runner (tests pass a fake one and need no sandbox);
`SnekAPI` in `snekbox.api.snekapi` is the production app, a thin shim that builds an `NsJail`,
reads the environment once and calls `create_app` on itself. Resources receive what they need
and build nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import falcon

from snekbox.api.admission import Admission
from snekbox.api.request import RequestParser
from snekbox.api.resources import (
    EvalResource,
    HealthResource,
    InfoResource,
    MetricsResource,
    OpenAPIResource,
)
from snekbox.api.resources.eval import Runner
from snekbox.api.resources.openapi import load_openapi
from snekbox.limits.table import EvalLimits
from snekbox.services import metrics
from snekbox.services.engine_facts import EngineFacts
from snekbox.services.health import HealthCheck, sandbox_probe
from snekbox.services.interpreters import Interpreter
from snekbox.services.limit_policy import LimitPolicy
from snekbox.services.settings import ApiSettings
from snekbox.services.slots import RunSlots

__all__ = ["APP_OPTIONS", "create_app"]

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


def _start_pool(runner: Runner, settings: ApiSettings) -> None:
    """Start the engine's pre-started jails, when the settings ask and the engine has them."""
    start_pool = getattr(runner, "start_pool", None)
    if settings.pool is None or start_pool is None:
        return
    metrics.prepare_pool_series(settings.pool.sizes)
    start_pool(settings.pool, metrics.record_pool_event)
    log.info(
        "Pre-started jails: %s, each retired after %g s unused",
        ", ".join(f"{size} waiting for {path}" for path, size in settings.pool.sizes.items()),
        settings.pool.idle_age,
    )


def create_app(
    runner: Runner,
    settings: ApiSettings | None = None,
    slots: RunSlots | None = None,
    *,
    interpreters: Sequence[Interpreter] = (),
    engine: EngineFacts | None = None,
    app: falcon.App | None = None,
) -> falcon.App:
    """Wire the API around `runner` and return it; what is not given is built from defaults.

    `settings` default to the environment's, `slots` to the settings' count, `engine` to what
    `runner` says of itself. `app` is the app to mount the routes on (`SnekAPI` passes
    itself); by default a new one.
    """
    from snekbox import __version__

    engine = engine if engine is not None else EngineFacts.of(runner)
    if settings is None:
        settings = ApiSettings.from_env(footprint=engine.footprint)
    if slots is None:
        slots = RunSlots(settings.max_concurrent_runs, settings.slots_dir)
    if app is None:
        app = falcon.App(**APP_OPTIONS)
    limits = LimitPolicy(engine.defaults, settings.max_limits, engine.footprint)
    _warn_about_limits(limits, slots)

    app.set_error_serializer(serialize_error)
    app.add_error_handler(Exception, handle_unexpected_error)
    app.add_route(
        "/eval",
        EvalResource(
            runner,
            parser=RequestParser(limits, settings.interpreter_root),
            admission=Admission(slots, limits, settings.queue_timeout),
            settings=settings,
        ),
    )
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
    _start_pool(runner, settings)
    app.add_route("/metrics", MetricsResource())
    app.add_route("/openapi.json", OpenAPIResource())
    metrics.RUN_SLOTS.set(slots.count)
    return app
