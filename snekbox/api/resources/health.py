"""GET /health: 200 when a trivial sandbox run works right now, 503 with the reason otherwise."""

from __future__ import annotations

import math

import falcon

from snekbox.services.health import HealthCheck

__all__ = ["UNHEALTHY_TITLE", "HealthResource"]

UNHEALTHY_TITLE = "The sandbox is not working"


class HealthResource:
    """Serve the (cached) result of a `HealthCheck`; meant for load balancers and probes."""

    def __init__(self, check: HealthCheck) -> None:
        self.check = check

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """200 `{"status": "ok", ...}` or 503 `{"title", "description"}`."""
        report = self.check.report()
        if not report.healthy:
            raise falcon.HTTPServiceUnavailable(
                title=UNHEALTHY_TITLE,
                description=f"The server cannot run code: {report.reason}.",
                retry_after=math.ceil(self.check.cache_seconds),
            )
        resp.media = {
            "status": "ok",
            "duration": round(report.duration, 6),
            "age": round(max(0.0, self.check.clock() - report.checked_at), 3),
        }
