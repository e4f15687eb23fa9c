"""Make a Gunicorn worker whose master died stop accepting at once and end its runs.

A worker orphaned by a killed master keeps its copy of the listening socket. Gunicorn's
workers notice the new parent within a second, but then stop polling the socket without
closing it and wait up to ``graceful_timeout`` for their requests: the port stays taken, a
restarted server cannot bind it, and new connections queue in the backlog unanswered until the
orphans' runs end. So a thread watches the parent; when it changes, the worker

1. swaps every listening socket for a socket that never accepts (``dup2``, so the descriptor
   numbers the worker's poller knows stay valid and the real socket is released at once:
   queued connections are reset, new ones refused, and the port is free),
2. tells the worker to stop, and
3. after ``ORPHAN_RUN_GRACE`` seconds kills the jails of its runs in flight, each of which then
   answers as a killed run; the worker exits once its requests are answered.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from snekbox.leftovers import kill_own_runs

__all__ = ("ORPHAN_RUN_GRACE", "POLL_INTERVAL", "watch_parent")

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.2
"""Seconds between checks of the parent pid: how late an orphan notices, at most."""

ORPHAN_RUN_GRACE = 3.0
"""Seconds an orphan's runs may still finish normally before their jails are killed."""


def watch_parent(worker: Any) -> threading.Thread:
    """Start watching ``worker``'s master (a Gunicorn worker with ``ppid`` and ``sockets``)."""
    thread = threading.Thread(
        target=_watch, args=(worker,), name="snekbox-parent-watch", daemon=True
    )
    thread.start()
    return thread


def _watch(worker: Any) -> None:
    while os.getppid() == worker.ppid:
        time.sleep(POLL_INTERVAL)
    log.warning(
        "Worker %d lost its master %d: closing its listeners and ending its runs.",
        os.getpid(),
        worker.ppid,
    )
    for listener in worker.sockets:
        _stop_listening(listener)
    worker.alive = False
    time.sleep(ORPHAN_RUN_GRACE)
    # Requests accepted before the listeners closed may still be starting runs: keep ending
    # them until the worker exits (this thread is a daemon and dies with it).
    while True:
        killed = kill_own_runs()
        if killed:
            log.warning("Killed %d process(es) of this orphaned worker's runs.", killed)
        time.sleep(POLL_INTERVAL)


def _stop_listening(listener: Any) -> None:
    """Release the listening socket behind ``listener``'s descriptor, keeping the descriptor.

    The stand-in is an unnamed Unix socket that listens but that no one can reach, so the
    worker's poller never reports it and an accept on it would only say "try again".
    """
    try:
        fd = listener.fileno()
    except OSError:
        return
    if fd < 0:
        return
    stand_in = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        stand_in.bind("")  # Linux: an autobound abstract address nobody knows
        stand_in.listen()
        stand_in.setblocking(False)
        os.dup2(stand_in.fileno(), fd, inheritable=False)
    except OSError as e:
        log.error("Could not release listening socket %d: %s", fd, e)
    finally:
        stand_in.close()
