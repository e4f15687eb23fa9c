"""Remove what dead owners left behind: their runs' processes, cgroups and tmpfs mounts.

A worker killed in the middle of a run (OOM killer, Gunicorn's heartbeat timeout, kill -9)
cannot clean up after itself: its NsJail runs on in its own session, and the run's tmpfs,
with whatever the program wrote there, stays mounted. Whoever notices the death sweeps:

- the Gunicorn master, as soon as it reaps a worker (``child_exit``) and when it starts;
- every ``NsJail`` when it is constructed, so a server started with any Gunicorn config (or
  none) cleans up after the servers that ran before it.

Ownership is decided by ``snekbox.ownership`` (a lock only a live process holds), never by
whether some process with that pid exists. Order matters: the processes die first, so no
jail still holds the tmpfs or forks into a cgroup being removed; then the cgroups and mounts go.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from snekbox import ownership
from snekbox.limits import cgroup, run_cgroup
from snekbox.snekio import owner_dir

__all__ = ("SweepReport", "kill_own_runs", "sweep_dead_owners")

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one sweep removed."""

    owners: int = 0
    cgroups: int = 0
    duration: float = 0.0


def _places(places: list[tuple[str, str]], kind: str) -> set[Path]:
    return {Path(place) for place_kind, place in places if place_kind == kind}


def sweep_dead_owners(directory: Path | None = None) -> SweepReport:
    """Kill and remove the runs of every dead owner in ``directory`` (the owners directory).

    Never raises: a sweep that fails is logged and retried by the next one (the dead owner's
    file stays until everything named after it is gone).
    """
    started = time.monotonic()
    owners = cgroups = 0
    try:
        for dead in ownership.dead_owners(directory):
            try:
                removed, done = _remove(dead)
            except OSError:
                log.exception("Could not remove the leftovers of dead owner %s.", dead.name)
                removed, done = 0, False
            cgroups += removed
            if done:
                dead.forget()
                owners += 1
            else:
                dead.release()
    except OSError:
        log.exception("Could not look for the leftovers of dead owners.")
    report = SweepReport(owners, cgroups, time.monotonic() - started)
    if cgroups:
        log.warning(
            "Removed the runs of %d dead owner(s) (%d cgroup(s)) in %.3f s.",
            owners,
            cgroups,
            report.duration,
        )
    return report


def _remove(dead: ownership.DeadOwner) -> tuple[int, bool]:
    """Remove one dead owner's runs; return how many cgroups went and whether all is gone."""
    parents = _places(dead.places, run_cgroup.RECORD_KIND)
    runs = cgroup.owner_run_cgroups(parents, dead.name)
    for run in runs:  # every jail first, before any cgroup or mount is touched
        cgroup.kill_run_processes(run)
    removed = sum(cgroup.remove_run_tree(run) for run in runs)
    done = removed == len(runs)
    for memfs_root in _places(dead.places, owner_dir.RECORD_KIND):
        done = owner_dir.remove_owner_mounts(memfs_root, dead.name) and done
    return removed, done


def kill_own_runs() -> int:
    """SIGKILL the jails of this process's runs in flight; return how many were signalled.

    For a worker that must stop now (its master died): each run then ends as killed, and the
    thread serving it answers and cleans up as after any other run.
    """
    owner = ownership.existing_owner()
    if owner is None:
        return 0  # this process never ran anything
    runs = cgroup.owner_run_cgroups(_places(owner.places(), run_cgroup.RECORD_KIND), owner.name)
    return sum(cgroup.kill_run_processes(run, supervisor=False) for run in runs)
