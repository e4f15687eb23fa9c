"""One log format for snekbox and Gunicorn, written to stdout.

Containers and systemd collect stdout, so every record goes there with the fields an operator
needs to untangle interleaved workers: time, pid, logger name and level.
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["DEBUG_ENV", "LOG_FORMAT", "debug_enabled", "init_logger", "stdout_handler"]

DEBUG_ENV = "SNEKBOX_DEBUG"
LOG_FORMAT = "%(asctime)s | %(process)5d | %(name)-24s | %(levelname)-7s | %(message)s"
_TRUTHY = frozenset({"1", "true", "yes", "on"})

_handler: logging.Handler | None = None


def debug_enabled() -> bool:
    """Whether SNEKBOX_DEBUG asks for debug logging (any of 1/true/yes/on, case-insensitive)."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() in _TRUTHY


def stdout_handler() -> logging.Handler:
    """Return the single stdout handler, so snekbox and Gunicorn lines never interleave mid-line."""
    global _handler
    if _handler is None:
        _handler = logging.StreamHandler(sys.stdout)
        _handler.setFormatter(logging.Formatter(LOG_FORMAT))
    return _handler


def init_logger(debug: bool | None = None) -> logging.Logger:
    """Send the "snekbox" logger tree to stdout, at DEBUG when asked and INFO otherwise.

    Idempotent: Gunicorn's logger class and the CLI may both call it in one process.
    """
    if debug is None:
        debug = debug_enabled()
    logger = logging.getLogger("snekbox")
    handler = stdout_handler()
    if handler not in logger.handlers:
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    # The root logger may have its own handlers (pytest, an embedding app): don't log twice.
    logger.propagate = False
    return logger
