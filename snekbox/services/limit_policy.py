"""Per-request limits: the engine's defaults, the server's maxima, and a run's slot weight."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from snekbox.limits.table import EvalLimits
from snekbox.services.footprint import RunFootprint
from snekbox.services.settings import LimitMaxima

__all__ = ["LimitAboveMaximumError", "LimitPolicy"]


class LimitAboveMaximumError(ValueError):
    """A request asked for more of a limit than this server allows."""

    def __init__(self, name: str, value: int, maximum: int) -> None:
        super().__init__(f"limits.{name} is {value}; the maximum is {maximum}")
        self.name = name
        self.value = value
        self.maximum = maximum


@dataclass(frozen=True, slots=True)
class LimitPolicy:
    """The server's default limits, the maxima a request may ask for, and their slot cost."""

    defaults: EvalLimits
    maxima: LimitMaxima
    footprint: RunFootprint
    """Host memory a run pins, which sets how many slots a run with more memory takes."""

    def resolve(self, requested: Mapping[str, int] | None) -> EvalLimits | None:
        """A request's `limits` as the engine's, or `LimitAboveMaximumError` for one too high.

        Without `limits` the answer is None, so the engine applies its config exactly as it
        would for a client that has never heard of them.
        """
        if requested is None:
            return None
        maxima = self.maxima.as_dict()
        for name, value in requested.items():
            if value > maxima[name]:
                raise LimitAboveMaximumError(name, value, maxima[name])
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
        return math.ceil(
            self.footprint.with_memory(memory) / self.footprint.with_memory(default_memory)
        )

    def describe(self) -> dict[str, dict[str, int | None]]:
        """The defaults and maxima as /info reports them."""
        return {"default": asdict(self.defaults), "maximum": self.maxima.as_dict()}
