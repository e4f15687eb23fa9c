"""The production WSGI app, `SnekAPI`: `create_app` around a real `NsJail`.

The engine is looked up as this module's `NsJail` when an app is built, so replacing that
attribute (`mock.patch("snekbox.api.snekapi.NsJail")`, as tests of the original do) replaces
the engine of every route. A replaced engine may lack the real one's attributes; the limits
and the jail environment then come from the config file the app was asked to use.
"""

from __future__ import annotations

import logging
from typing import Any

import falcon

from snekbox.api.app import APP_OPTIONS, create_app
from snekbox.jail_config import DEFAULT_CONFIG_PATH
from snekbox.nsjail import NsJail
from snekbox.services import metrics
from snekbox.services.engine_facts import EngineFacts
from snekbox.services.interpreters import USER_BASE, discover_interpreters, jail_environment
from snekbox.services.settings import ApiSettings
from snekbox.utils.sentry import init_sentry

__all__ = ["NsJail", "SnekAPI"]

log = logging.getLogger(__name__)


class SnekAPI(falcon.App):
    """The snekbox WSGI app; its arguments configure the `NsJail` it runs code with.

    For example `wsgi_app = "snekbox:SnekAPI(max_output_size=2_000_000)"` in a Gunicorn config.
    Server limits (concurrent runs, body size) come from the environment, see `ApiSettings`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(**APP_OPTIONS)
        from snekbox import __version__

        init_sentry(__version__)
        metrics.check_multiprocess_mode()
        self.nsjail = NsJail(*args, **kwargs)
        engine = EngineFacts.of(self.nsjail, kwargs.get("config_path", DEFAULT_CONFIG_PATH))
        settings = ApiSettings.from_env(footprint=engine.footprint)
        jail_env = jail_environment(engine.config.envar)
        interpreters = discover_interpreters(
            settings.interpreter_root,
            env=jail_env,
            user_base=jail_env.get("PYTHONUSERBASE", USER_BASE),
        )
        self.run_defaults = engine.defaults
        """The limits a run gets without `limits` (the worker's own 429 reads the time)."""
        create_app(self.nsjail, settings, interpreters=interpreters, engine=engine, app=self)
        log.info(
            "snekbox %s ready: %d concurrent runs, bodies up to %d bytes, queue timeout %g s",
            __version__,
            settings.max_concurrent_runs,
            settings.max_body_size,
            settings.queue_timeout,
        )
