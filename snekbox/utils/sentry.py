"""Optional error reporting to Sentry, switched on by SNEKBOX_SENTRY_DSN."""

from __future__ import annotations

import logging
import os

__all__ = ["DSN_ENV", "init_sentry"]

DSN_ENV = "SNEKBOX_SENTRY_DSN"
log = logging.getLogger(__name__)
_initialised = False


def init_sentry(version: str) -> bool:
    """Start the Sentry SDK with the Falcon integration when it is installed and a DSN is set.

    Returns whether Sentry is now active. Without either, nothing is imported or changed, so a
    server without the optional dependency behaves exactly the same.
    """
    global _initialised
    if _initialised:
        return True
    dsn = os.environ.get(DSN_ENV, "").strip()
    if not dsn:
        return False
    try:
        import sentry_sdk
        from sentry_sdk.integrations.falcon import FalconIntegration
    except ImportError:
        log.warning("%s is set but sentry-sdk is not installed; errors are not reported", DSN_ENV)
        return False

    sentry_sdk.init(dsn=dsn, release=f"snekbox@{version}", integrations=[FalconIntegration()])
    _initialised = True
    log.info("Sentry error reporting is on (release snekbox@%s)", version)
    return True
