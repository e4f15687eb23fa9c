"""Per-request limits: the engine's defaults, what a request may ask for, and their slot cost."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import falcon

from snekbox.api.errors import LIMIT_TOO_HIGH_TITLE
from snekbox.api.settings import LimitMaxima, run_memory_footprint
from snekbox.limits.table import LIMITS, EvalLimits

if TYPE_CHECKING:
    pass

__all__ = ["LIMIT_UNITS", "LimitPolicy"]

# How each limit is counted, for error messages.
LIMIT_UNITS = {limit.name: limit.unit for limit in LIMITS}


@dataclass(frozen=True, slots=True)
class LimitPolicy:
    """The server's default limits, the maxima a request may ask for, and their slot cost."""

    defaults: EvalLimits
    maxima: LimitMaxima

    def resolve(self, requested: Mapping[str, int] | None) -> EvalLimits | None:
        """Turn a request's `limits` into the engine's, or raise a 400 naming a limit too high.

        Without `limits` the answer is None, so the engine applies its config exactly as it
        would for a client that has never heard of them.
        """
        if requested is None:
            return None
        maxima = self.maxima.as_dict()
        for name, value in requested.items():
            if value > maxima[name]:
                unit = LIMIT_UNITS[name]
                raise falcon.HTTPBadRequest(
                    title=LIMIT_TOO_HIGH_TITLE,
                    description=f"limits.{name} is {value} {unit}; this server allows at most "
                    f"{maxima[name]} {unit}.",
                )
        return EvalLimits(**requested)

    def slots_for(self, limits: EvalLimits | None) -> int:
        """Run slots a run takes: one per default run's worth of memory it may pin.

        The slot count is sized for runs at the default memory limit; a run allowed more
        memory takes proportionally more slots, so all runs together stay within what the
        count was sized for.
        """
        default_memory = self.defaults.memory or 0
        memory = limits.memory if limits is not None and limits.memory else default_memory
        if memory <= default_memory:
            return 1
        return math.ceil(run_memory_footprint(memory) / run_memory_footprint(default_memory))

    def describe(self) -> dict[str, dict[str, int | None]]:
        """The defaults and maxima as /info reports them."""
        return {"default": asdict(self.defaults), "maximum": self.maxima.as_dict()}
