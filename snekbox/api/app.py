"""The WSGI application: routes, JSON-only errors, and the engine it is given."""

from __future__ import annotations

import json
import logging
from typing import Any

import falcon

from snekbox.api.resources.eval import EvalResource, Runner
from snekbox.api.settings import ApiSettings
from snekbox.api.slots import RunSlots
from snekbox.nsjail import NsJail
from snekbox.utils.sentry import init_sentry

__all__ = ["SnekAPI", "create_app"]

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


def _mount(app: falcon.App, runner: Runner, settings: ApiSettings, slots: RunSlots | None) -> None:
    """Install snekbox's routes and error handling on `app`."""
    app.set_error_serializer(serialize_error)
    app.add_error_handler(Exception, handle_unexpected_error)
    app.add_route("/eval", EvalResource(runner, settings=settings, slots=slots))


def create_app(
    runner: Runner, settings: ApiSettings | None = None, slots: RunSlots | None = None
) -> falcon.App:
    """Build the API around any runner; tests pass a fake one and need no sandbox."""
    app = falcon.App(**APP_OPTIONS)
    _mount(app, runner, settings if settings is not None else ApiSettings.from_env(), slots)
    return app


class SnekAPI(falcon.App):
    """The snekbox WSGI app; its arguments configure the `NsJail` it runs code with.

    For example `wsgi_app = "snekbox:SnekAPI(max_output_size=2_000_000)"` in a Gunicorn config.
    Server limits (concurrent runs, body size) come from the environment, see `ApiSettings`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(**APP_OPTIONS)
        from snekbox import __version__

        init_sentry(__version__)
        settings = ApiSettings.from_env()
        self.nsjail = NsJail(*args, **kwargs)
        _mount(self, self.nsjail, settings, None)
        log.info(
            "snekbox %s ready: %d concurrent runs, bodies up to %d bytes",
            __version__,
            settings.max_concurrent_runs,
            settings.max_body_size,
        )
