"""GET /metrics: Prometheus text format, summed over every worker of the server."""

from __future__ import annotations

import falcon

from snekbox.services import metrics

__all__ = ["MetricsResource"]


class MetricsResource:
    """Expose `snekbox.services.metrics` (and, in one process, the client's process metrics)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Render in the format the scraper's Accept header asks for (text or OpenMetrics)."""
        resp.data, resp.content_type = metrics.render(req.get_header("Accept"))
