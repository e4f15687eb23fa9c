"""The HTTP resources snekbox serves."""

from snekbox.api.resources.eval import EvalResource
from snekbox.api.resources.health import HealthResource
from snekbox.api.resources.info import InfoResource
from snekbox.api.resources.metrics import MetricsResource
from snekbox.api.resources.openapi import OpenAPIResource

__all__ = [
    "EvalResource",
    "HealthResource",
    "InfoResource",
    "MetricsResource",
    "OpenAPIResource",
]
