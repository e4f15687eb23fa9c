"""The original snekbox's logging module path, for Gunicorn configs and code that name it.

The original's ``config/gunicorn.conf.py`` sets ``logger_class = "snekbox.logging.GunicornLogger"``
and users mount their own copy of that file, so these names must resolve here. They live in
``snekbox.utils``; this module only gives them the original's address.
"""

from snekbox.utils.gunicorn import GunicornLogger
from snekbox.utils.logging import LOG_FORMAT as FORMAT
from snekbox.utils.logging import init_logger
from snekbox.utils.sentry import init_sentry

__all__ = ("FORMAT", "GunicornLogger", "init_logger", "init_sentry")
