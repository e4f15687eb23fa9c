"""Is this server able to run code right now? Answered by running code, at most every few seconds.

A health check that only proves the HTTP worker answers would stay green while every run fails
(NsJail missing, cgroups gone, /memfs full). So the check starts a real sandbox with a trivial
program and requires the right output within a short deadline. Probes (Docker, Kubernetes, a
load balancer) may call it often; its result is cached for a few seconds and concurrent callers
share one check in flight, so probing cannot multiply sandboxes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from snekbox.limits.table import EvalLimits

__all__ = ["HealthCheck", "HealthError", "HealthReport", "sandbox_probe"]

log = logging.getLogger(__name__)

# How long a result is reused; Kubernetes probes every 10 s by default, Docker every 30 s.
CACHE_SECONDS = 5.0
# A trivial run takes ~50 ms; a server that needs seconds for it is not fit to take traffic.
DEADLINE_SECONDS = 5.0
# NsJail's own time limit for the probe, so a stuck run is killed well before the engine's.
PROBE_TIME_LIMIT = 2

PROBE_CODE = "print(6 * 7)"
PROBE_OUTPUT = "42\n"


class HealthError(Exception):
    """The probe ran but the sandbox did not work; the message says how, in one line."""


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The outcome of one check."""

    healthy: bool
    reason: str
    """"ok", or why the server cannot run code."""
    duration: float
    """Seconds the probe took (the deadline when it did not finish)."""
    checked_at: float
    """`time.monotonic()` when the check finished."""


def sandbox_probe(runner: Any) -> Callable[[], None]:
    """A probe that runs `PROBE_CODE` through `runner` (an `NsJail`) and checks its output.

    With pre-started jails the probe runs twice: once as a request would (taking a waiting
    jail), and once in a fresh jail, because waiting jails started before the host broke would
    otherwise hide that no new jail can start, neither for cold runs nor for the refill.
    """

    def probe() -> None:
        _check(runner.python3(["-c", PROBE_CODE], limits=EvalLimits(time=PROBE_TIME_LIMIT)))
        if getattr(runner, "pool", None) is not None:
            limits = EvalLimits(time=PROBE_TIME_LIMIT)
            _check(runner.python3(["-c", PROBE_CODE], limits=limits, use_pool=False))

    return probe


def _check(result: Any) -> None:
    """Raise `HealthError` unless ``result`` is the probe's expected answer."""
    if result.returncode is None:
        raise HealthError(f"the sandbox could not start: {result.stdout}")
    if result.returncode != 0 or result.stdout != PROBE_OUTPUT:
        raise HealthError(
            f"a trivial run ended with return code {result.returncode} (status "
            f"{result.status}) and output {result.stdout[:200]!r}, not {PROBE_OUTPUT!r}"
        )


class HealthCheck:
    """Run `probe` at most once per `cache_seconds`, waiting at most `deadline` for it.

    The probe runs on its own thread: a hung sandbox makes the check answer "unhealthy" at the
    deadline instead of holding the caller. While that probe is still running, later checks
    report it as still unanswered rather than starting another.
    """

    def __init__(
        self,
        probe: Callable[[], None],
        *,
        cache_seconds: float = CACHE_SECONDS,
        deadline: float = DEADLINE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.probe = probe
        self.cache_seconds = cache_seconds
        self.deadline = deadline
        self.clock = clock
        self._lock = threading.Lock()
        self._last: HealthReport | None = None
        self._running: threading.Event | None = None  # set when the probe in flight finishes
        self._started = 0.0

    def report(self) -> HealthReport:
        """The latest result if it is fresh, else the result of a new (or the running) probe."""
        with self._lock:
            last = self._last
            if last is not None and self.clock() - last.checked_at < self.cache_seconds:
                return last
            if self._running is None:
                self._running = threading.Event()
                self._started = self.clock()
                threading.Thread(
                    target=self._run, args=(self._running,), name="snekbox-health", daemon=True
                ).start()
            running, started = self._running, self._started
        if running.wait(max(0.0, started + self.deadline - self.clock())):
            with self._lock:
                assert self._last is not None
                return self._last
        report = HealthReport(
            False,
            f"a trivial sandbox run did not answer within {self.deadline:g} s "
            f"(running for {self.clock() - started:.1f} s)",
            self.deadline,
            self.clock(),
        )
        with self._lock:
            if self._running is running:  # still stuck: remember, so callers are not held
                self._last = report
        log.warning("Health check failed: %s", report.reason)
        return report

    def _run(self, done: threading.Event) -> None:
        """Run the probe once and publish its result (even after the deadline has passed)."""
        start = self.clock()
        try:
            self.probe()
        except HealthError as error:
            healthy, reason = False, str(error)
        except Exception as error:
            log.exception("The health probe raised an unexpected error.")
            healthy, reason = False, f"the health probe failed: {type(error).__name__}: {error}"
        else:
            healthy, reason = True, "ok"
        end = self.clock()
        report = HealthReport(healthy, reason, end - start, end)
        if not healthy:
            log.warning("Health check failed: %s", reason)
        with self._lock:
            self._last = report
            self._running = None
        done.set()
