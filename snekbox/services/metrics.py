"""Prometheus metrics: what the evaluations did, how long they queued, and what was refused.

Under Gunicorn every worker process counts its own requests, and a scrape lands on one worker;
prometheus-client's multiprocess mode makes each worker write its values to files in
`PROMETHEUS_MULTIPROC_DIR` and the scraped worker sums them all. The variable must be set
before `prometheus_client` is first imported (it picks its storage at import time), which is
why `config/gunicorn.conf.py` sets it at the top, before it imports anything of snekbox's.
Without the variable (tests, a single process) the metrics live in this process's registry.

The load figure an autoscaler reads, `snekbox_run_slot_utilization`, is a ratio of two values
that are each aggregated differently across workers (slots in use: summed over live workers;
slot count: the same in every worker), so no per-process gauge can hold it: it is computed at
scrape time from the aggregated pair.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from snekbox.pool import EVENTS as POOL_EVENTS
from snekbox.result import EvalResult, Status

__all__ = [
    "EVALS",
    "EVAL_DURATION",
    "MULTIPROC_DIR_ENV",
    "POOL_EVENTS_COUNTER",
    "QUEUE_REJECTIONS",
    "QUEUE_WAIT",
    "RUNS_IN_FLIGHT",
    "RUN_SLOTS",
    "RUN_SLOTS_IN_USE",
    "RUN_SLOT_UTILIZATION",
    "STATUSES",
    "prepare_pool_series",
    "record_eval",
    "record_pool_event",
    "render",
]

log = logging.getLogger(__name__)

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Every value of a response's `status` (see snekbox.result.Status), so each series
# exists from the start and a rate over it never misses its first increment.
STATUSES = tuple(Status)

# Runs last from ~50 ms (print) to the time limit (6 s by default, at most 30 s per request).
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 20.0, 30.0, 40.0)
# Most requests find a free slot at once; the rest wait up to the queue timeout (3 s default).
QUEUE_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)

EVALS = Counter(
    "snekbox_evals",
    "Evaluations that ran, by how they ended (the response's status field).",
    ["status"],
)
for _status in STATUSES:
    EVALS.labels(_status)

EVAL_DURATION = Histogram(
    "snekbox_eval_duration_seconds",
    "Wall time of each sandboxed run, from starting NsJail to reaping it.",
    buckets=DURATION_BUCKETS,
)
QUEUE_WAIT = Histogram(
    "snekbox_queue_wait_seconds",
    "Time an evaluation waited for a free run slot before its sandbox started.",
    buckets=QUEUE_BUCKETS,
)
QUEUE_REJECTIONS = Counter(
    "snekbox_queue_rejections",
    "Evaluations answered 429 because no run slot became free within the queue timeout.",
)
_RUN_SLOTS_NAME = "snekbox_run_slots"
_RUN_SLOTS_IN_USE_NAME = "snekbox_run_slots_in_use"

RUNS_IN_FLIGHT = Gauge(
    "snekbox_runs_in_flight",
    "Sandboxes running right now, across all worker processes.",
    multiprocess_mode="livesum",
)
RUN_SLOTS = Gauge(
    _RUN_SLOTS_NAME,
    "Sandboxes the server runs at once at most (SNEKBOX_MAX_CONCURRENT_RUNS).",
    multiprocess_mode="livemax",
)
# A run that raised its memory limit holds several slots, so slots in use (not runs) is what
# says how full a server is.
RUN_SLOTS_IN_USE = Gauge(
    _RUN_SLOTS_IN_USE_NAME,
    "Run slots held by sandboxes running right now, across all worker processes.",
    multiprocess_mode="livesum",
)
# Pre-started jails: hits and misses say how often a run that could take one found one; refills
# and retirements how many were started and how many ended unused (idle age, died waiting).
POOL_EVENTS_COUNTER = Counter(
    "snekbox_pool_events",
    "Pre-started jail events: hit (a run took one), miss (an eligible run found none and ran "
    "cold), refill (one was started), retire (one ended unused).",
    ["event", "interpreter"],
)
RUN_SLOT_UTILIZATION = "snekbox_run_slot_utilization"
_UTILIZATION_HELP = (
    "Run slots in use over run slots (0 to 1), across all worker processes: the load figure "
    "to autoscale on."
)


def multiprocess_dir() -> str | None:
    """The directory shared by all workers' metric files, when multiprocess mode is on."""
    return os.environ.get(MULTIPROC_DIR_ENV) or None


def check_multiprocess_mode() -> None:
    """Warn when the directory is set but prometheus-client was imported before it was.

    The metrics would then count only the scraped worker's requests, silently.
    """
    multiprocess_storage = values.ValueClass is not values.MutexValue
    if multiprocess_dir() and not multiprocess_storage:
        log.warning(
            "%s is set, but prometheus_client was imported before it was: /metrics reports "
            "only the worker that answers it",
            MULTIPROC_DIR_ENV,
        )


def gauge_value(families: Iterable[Metric], name: str) -> float | None:
    """The value of the unlabelled gauge `name` among `families`, or None if it is absent."""
    for family in families:
        if family.name == name:
            for sample in family.samples:
                if sample.name == name:
                    return sample.value
    return None


def slot_utilization(families: Iterable[Metric]) -> GaugeMetricFamily:
    """`snekbox_run_slot_utilization` from the aggregated slots in use and slot count."""
    families = list(families)
    in_use = gauge_value(families, _RUN_SLOTS_IN_USE_NAME) or 0.0
    slots = gauge_value(families, _RUN_SLOTS_NAME)
    # No slot count yet (no worker has built the app): nothing runs, so nothing is in use.
    ratio = in_use / slots if slots else 0.0
    return GaugeMetricFamily(RUN_SLOT_UTILIZATION, _UTILIZATION_HELP, value=ratio)


class _Snapshot:
    """Metric families collected once, so the utilisation and its parts agree in a scrape."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


def render(accept: str | None) -> tuple[bytes, str]:
    """Encode every metric in the format `accept` asks for; return the body and its type."""
    source: CollectorRegistry = REGISTRY
    directory = multiprocess_dir()
    if directory:
        source = CollectorRegistry()
        MultiProcessCollector(source, path=directory)
    families = list(source.collect())
    families.append(slot_utilization(families))
    encoder, content_type = choose_encoder(accept or "")
    return encoder(_Snapshot(families)), content_type  # type: ignore[arg-type]


def record_eval(result: EvalResult) -> None:
    """Count one evaluation that ran, by how it ended, and its wall time."""
    EVALS.labels(result.status).inc()
    EVAL_DURATION.observe(result.duration)


def record_pool_event(event: str, executable: str) -> None:
    """Count one event of the pre-started jails (see `snekbox.pool.EVENTS`)."""
    POOL_EVENTS_COUNTER.labels(event, executable).inc()


def prepare_pool_series(executables: Iterable[str]) -> None:
    """Make every pool series exist from the start, so a rate over it misses no increment."""
    for executable in executables:
        for event in POOL_EVENTS:
            POOL_EVENTS_COUNTER.labels(event, executable)
