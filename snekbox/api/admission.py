"""Admission: hold the run slots a checked request needs while it runs, or answer 429.

A request's wait for slots starts when its head arrived (`time_since_arrival`): what it
already spent waiting for a thread is taken off the queue timeout.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import falcon

from snekbox.limits.table import EvalLimits
from snekbox.services import metrics
from snekbox.services.limit_policy import LimitPolicy
from snekbox.services.slots import NoSlotAvailableError, RunSlots

__all__ = ["Admission"]

log = logging.getLogger(__name__)


class Admission:
    """Let a run in when its slots are free, within the queue timeout."""

    def __init__(self, slots: RunSlots, limits: LimitPolicy, queue_timeout: float) -> None:
        self.slots = slots
        self.limits = limits
        self.queue_timeout = queue_timeout
        # By then every default run that held a slot when a request gave up has ended.
        self.retry_after = max(1, math.ceil(limits.defaults.time or 1))

    @contextmanager
    def admit(self, limits: EvalLimits | None, queued: float = 0.0) -> Iterator[None]:
        """Hold the slots a run with `limits` takes for the block; 429 if none freed up.

        `queued` is how long the request already waited for a thread.
        """
        start = time.monotonic()
        with ExitStack() as held:
            try:
                held.enter_context(
                    self.slots.slot(
                        max(0.0, self.queue_timeout - queued), self.limits.slots_for(limits)
                    )
                )
            except NoSlotAvailableError as error:
                metrics.QUEUE_REJECTIONS.inc()
                raise self._server_full(error) from None
            metrics.QUEUE_WAIT.observe(queued + time.monotonic() - start)
            held.enter_context(metrics.RUNS_IN_FLIGHT.track_inprogress())
            weight = self.limits.slots_for(limits)
            metrics.RUN_SLOTS_IN_USE.inc(weight)  # the load figure the autoscaler reads
            held.callback(metrics.RUN_SLOTS_IN_USE.dec, weight)
            yield

    def _server_full(self, error: NoSlotAvailableError) -> falcon.HTTPTooManyRequests:
        """The 429 for a request that found every slot busy for the whole queue timeout."""
        log.info("Every run slot stayed busy for %.1f s; answering 429", error.waited)
        return falcon.HTTPTooManyRequests(
            description=f"No sandbox slot became free within {self.queue_timeout:g} seconds "
            f"(this server runs {self.slots.count} at once); retry after {self.retry_after} "
            "seconds.",
            retry_after=self.retry_after,
        )
