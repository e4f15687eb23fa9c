"""A Gunicorn logger class that writes through snekbox's handler and format."""

from __future__ import annotations

from typing import Any

from gunicorn import glogging

from snekbox.utils.logging import init_logger, stdout_handler

__all__ = ["GunicornLogger"]


class GunicornLogger(glogging.Logger):
    """Gunicorn's error and access logs, formatted like snekbox's own records.

    Gunicorn would otherwise install its own handlers (stderr for errors, another format for
    access lines); routing both through one stdout handler keeps one format per line and one
    stream to collect.
    """

    def setup(self, cfg: Any) -> None:
        """Let Gunicorn apply its settings, then swap its stream handlers for snekbox's."""
        super().setup(cfg)
        init_logger()
        handler = stdout_handler()
        for logger in (self.error_log, self.access_log):
            for own in [h for h in logger.handlers if getattr(h, "_gunicorn", False)]:
                logger.removeHandler(own)
            if handler not in logger.handlers:
                logger.addHandler(handler)
