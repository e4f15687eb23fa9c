"""The production WSGI app, `SnekAPI`: the routes of `create_app` around a real `NsJail`.

The engine is looked up as this module's `NsJail` when an app is built, so replacing that
attribute (`mock.patch("snekbox.api.snekapi.NsJail")`, as tests of the original do) replaces
the engine of every route. A replaced engine may lack the real one's attributes; the limits
and the jail environment then come from the config file the app was asked to use.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import falcon

from snekbox.api import metrics
from snekbox.api.app import APP_OPTIONS, mount_routes
from snekbox.api.interpreters import USER_BASE, discover_interpreters, jail_environment
from snekbox.api.settings import ApiSettings
from snekbox.config_pb2 import NsJailConfig
from snekbox.limits.table import config_defaults
from snekbox.nsjail import DEFAULT_CONFIG_PATH, DEFAULT_MAX_OUTPUT_SIZE, NsJail
from snekbox.nsjail import read_config as _read_config
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
        settings = ApiSettings.from_env()
        self.nsjail = NsJail(*args, **kwargs)
        config = _engine_config(self.nsjail, kwargs.get("config_path", DEFAULT_CONFIG_PATH))
        max_output = getattr(self.nsjail, "max_output_size", None)
        defaults = config_defaults(
            config, max_output if isinstance(max_output, int) else DEFAULT_MAX_OUTPUT_SIZE
        )
        jail_env = jail_environment(config.envar)
        interpreters = discover_interpreters(
            settings.interpreter_root,
            env=jail_env,
            user_base=jail_env.get("PYTHONUSERBASE", USER_BASE),
        )
        self.run_defaults = defaults
        """The limits a run gets without `limits` (the worker's own 429 reads the time)."""
        mount_routes(self, self.nsjail, settings, None, interpreters, defaults)
        log.info(
            "snekbox %s ready: %d concurrent runs, bodies up to %d bytes, queue timeout %g s",
            __version__,
            settings.max_concurrent_runs,
            settings.max_body_size,
            settings.queue_timeout,
        )


def _engine_config(engine: object, config_path: str) -> NsJailConfig:
    """The engine's parsed config, or the config file's when the engine is a stand-in."""
    config = getattr(engine, "config", None)
    if isinstance(config, NsJailConfig):
        return config
    if Path(config_path).is_file():
        return _read_config(config_path)
    return NsJailConfig()
