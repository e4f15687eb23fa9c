"""Gunicorn settings for snekbox (`gunicorn -c config/gunicorn.conf.py`).

Why gthread: a request spends nearly all its time waiting, first for its body and then for its
sandbox, and none of that needs a process of its own. Threads let one worker wait on many
sandboxes at once, so the number of runs in flight is set by SNEKBOX_MAX_CONCURRENT_RUNS (sized
for memory), not by the two worker processes.

Slow clients: snekbox's gthread worker (snekbox.serving.worker) reads request heads in its
event loop and lends a thread only to a request whose head has arrived, within
SNEKBOX_HEAD_TIMEOUT seconds and with caps on how many heads (in all, and per client) may be
arriving at once; a request that finds no free thread within SNEKBOX_QUEUE_TIMEOUT is answered
429. A client that stalls while sending its body is answered 408 after SNEKBOX_BODY_TIMEOUT
seconds of silence. See the README's "Serving" section.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from snekbox import ownership  # imports neither prometheus-client nor the app

# Metrics: prometheus-client chooses per-process files or in-memory values when it is first
# imported, and importing snekbox below may import it. So the directory every worker writes its
# metrics to is set first, here in the master, and emptied: values of a previous server (or of
# dead workers' pids) must not be summed into this one's. Gunicorn re-reads this file on
# SIGHUP; the master's pid marks the directory as prepared, so live workers keep their files.
# The master holds a lock on the directories it uses (inherited by its workers), so a crashed
# master's directories, which never saw on_exit, are found and removed by the next start.
_METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
_METRICS_PREFIX = "snekbox-metrics-"
_SLOTS_PREFIX = "snekbox-slots-"
_METRICS_OWNER_ENV = "SNEKBOX_METRICS_MASTER_PID"
if os.environ.get(_METRICS_OWNER_ENV) != str(os.getpid()):
    for _prefix in (_METRICS_PREFIX, _SLOTS_PREFIX):
        ownership.remove_dead_tempdirs(_prefix)
    if os.environ.get(_METRICS_ENV):
        _metrics_dir = Path(os.environ[_METRICS_ENV])
        _metrics_dir.mkdir(parents=True, exist_ok=True)
        ownership.hold_directory(_metrics_dir)
        for _stale in _metrics_dir.glob("*.db"):
            _stale.unlink()
    else:
        os.environ[_METRICS_ENV] = ownership.make_owned_tempdir(_METRICS_PREFIX)
    os.environ[_METRICS_OWNER_ENV] = str(os.getpid())

from snekbox.services.pool_settings import WORKERS_ENV  # noqa: E402 (after the above)
from snekbox.services.settings import SLOTS_DIR_ENV, ApiSettings  # noqa: E402

workers = 2
# Each worker keeps its own pre-started jails; the settings count them once per worker.
os.environ[WORKERS_ENV] = str(workers)
_settings = ApiSettings.from_env()

wsgi_app = "snekbox:SnekAPI()"
bind = "0.0.0.0:8060"

# Gunicorn's gthread worker, except that request heads are read without a thread (see above).
worker_class = "snekbox.serving.worker.BoundedThreadWorker"
# Every run may land in one worker, and each waits on a thread; the spare threads keep
# answering cheap requests (validation errors, stalled uploads) while all slots are busy.
SPARE_THREADS = 16
threads = _settings.max_concurrent_runs + SPARE_THREADS

# gthread workers heartbeat from their main loop, so this bounds a hung worker, not a request.
timeout = 30
# Long enough for a run in progress to finish on restart: the longest time limit a request may
# ask for, plus NsJail's kill grace and file collection.
graceful_timeout = max(20, _settings.max_limits.time + 10)
keepalive = 5

# The default control socket lives at one path per user, so two servers on a host (tests, a
# benchmark) would fight over it; snekbox needs no runtime management through it.
control_socket_disable = True

logger_class = "snekbox.utils.gunicorn.GunicornLogger"
accesslog = "-"
errorlog = "-"
# Client address, method and path, status, response bytes, duration in milliseconds.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'


def on_starting(server: Any) -> None:
    """Sweep what dead servers left, and share the run slots' directory with the workers.

    The slots' directory is made before the workers fork, so they all lock the same files.
    """
    from snekbox.leftovers import sweep_dead_owners

    sweep_dead_owners()
    if os.environ.get(SLOTS_DIR_ENV):  # the operator's, or an upgraded master's (USR2)
        Path(os.environ[SLOTS_DIR_ENV]).mkdir(parents=True, exist_ok=True)
        ownership.hold_directory(os.environ[SLOTS_DIR_ENV])
    else:
        os.environ[SLOTS_DIR_ENV] = ownership.make_owned_tempdir(_SLOTS_PREFIX)
        server.log.info(
            "Sharing %d sandbox slots between workers via %s",
            _settings.max_concurrent_runs,
            os.environ[SLOTS_DIR_ENV],
        )


def post_worker_init(worker: Any) -> None:
    """Let the worker stop at once if its master dies (see snekbox.utils.parent_watch)."""
    from snekbox.utils.parent_watch import watch_parent

    watch_parent(worker)


def child_exit(server: Any, worker: Any) -> None:
    """Remove a dead worker's runs at once, and drop its live gauges (runs in flight).

    A worker that exits normally has finished its runs, so the sweep finds nothing of it; one
    that was killed leaves runs whose mounts, cgroups and jails must not wait for a restart.
    """
    from prometheus_client import multiprocess

    from snekbox.leftovers import sweep_dead_owners

    sweep_dead_owners()
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    """Remove the slot and metrics directories this master created."""
    for name, prefix in ((SLOTS_DIR_ENV, _SLOTS_PREFIX), (_METRICS_ENV, _METRICS_PREFIX)):
        directory = os.environ.get(name, "")
        if os.path.basename(directory).startswith(prefix):
            shutil.rmtree(directory, ignore_errors=True)
