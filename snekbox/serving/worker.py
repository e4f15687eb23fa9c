"""A Gunicorn gthread worker that lends a thread only to requests whose head has arrived.

Gunicorn's `gthread` worker hands every new connection to a thread, which then reads the
request line and headers with blocking reads and no deadline: a few hundred connections that
send one byte and stop hold every thread, and the server stops answering. This worker reads
heads itself, without blocking, in its event loop, and bounds them:

- a head must be complete within `SNEKBOX_HEAD_TIMEOUT` seconds of the connection's first wait
  for it (at accept, or when a kept-alive connection becomes readable), else 408;
- at most `SNEKBOX_MAX_PENDING_HEADS` heads may be arriving at once in a worker, at most
  `SNEKBOX_MAX_PENDING_HEADS_PER_CLIENT` from one client address; past either cap the oldest
  such connection is dropped with 503, so a flood of slow connections only ever displaces
  itself;
- a complete head waits for a free thread at most `SNEKBOX_QUEUE_TIMEOUT` seconds, counted from
  when it arrived, and is answered 429 by the worker if none frees up: a request's queue time
  covers both the wait for a thread and the wait for a sandbox slot (the app is told when the
  request arrived through `snekbox.services.slots.ARRIVED_ENVIRON_KEY`).

Everything after the head (the body, the app, the response, keep-alive) is Gunicorn's own
code, unchanged. TLS and HTTP/2 prior-knowledge connections, where the first bytes are not an
HTTP/1 head, are served exactly as the stock worker serves them.
"""

from __future__ import annotations

import errno
import logging
import math
import selectors
import threading
import time
from collections import deque
from functools import partial
from http import HTTPStatus
from typing import Any

from gunicorn import http
from gunicorn.http2 import negotiation
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

from snekbox.services import metrics
from snekbox.services.settings import ApiSettings
from snekbox.services.slots import ARRIVED_ENVIRON_KEY
from snekbox.serving.answers import error_answer
from snekbox.serving.heads import PendingHead, PendingHeads
from snekbox.serving.settings import MAX_HEAD_SIZE, ServingSettings

__all__ = ["BoundedThreadWorker"]

log = logging.getLogger(__name__)

# The attribute on Gunicorn's connection object that holds when its current head was complete.
_ARRIVED = "snekbox_arrived"
RECV_SIZE = 64 * 1024


def _client_key(client: Any) -> str:
    """The address a per-client cap counts by: the IP of a TCP peer, one key for a Unix socket."""
    if isinstance(client, tuple) and client:
        return str(client[0])
    return "unix"


class BoundedThreadWorker(ThreadWorker):
    """gthread, with request heads read in the event loop under a deadline and caps."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.serving = ServingSettings.from_env()
        self.queue_timeout = ApiSettings.from_env().queue_timeout
        self.pending_heads: PendingHeads[TConn] = PendingHeads(
            self.serving.max_pending_heads, self.serving.max_pending_heads_per_client
        )
        # Connections with a complete head, waiting for a thread, in order of arrival.
        self.ready_conns: deque[TConn] = deque()
        self.busy_threads = 0
        self._handling = threading.local()  # the arrival time of the request a thread serves
        self._stopping_since: float | None = None
        self.retry_after = max(1, math.ceil(self.queue_timeout))

    # -- where connections enter: every path into the thread pool goes through enqueue_req --

    def enqueue_req(self, conn: TConn) -> None:
        """Read the connection's next head first, unless it is complete or cannot be read here."""
        if getattr(conn, _ARRIVED, None) is not None or not self._reads_heads(conn):
            self._dispatch(conn)
        else:
            self._start_head(conn)

    def _reads_heads(self, conn: TConn) -> bool:
        """Whether the first bytes are a plain HTTP/1 head (no TLS, no HTTP/2 preface)."""
        if conn.is_http2 or self.cfg.is_ssl:
            return False
        return conn.parser is not None or not negotiation.prior_knowledge_allowed(
            self.cfg, conn.client
        )

    def _start_head(self, conn: TConn) -> None:
        """Wait in the poller for `conn`'s head, starting from what its parser read ahead."""
        read_ahead = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        now = time.monotonic()
        head, dropped = self.pending_heads.add(
            conn, _client_key(conn.client), now + self.serving.head_timeout, read_ahead
        )
        for other in dropped:
            self._refuse(other, self._crowded_answer(other))
        if head.feed(b""):
            self._head_complete(head, now)
            return
        conn.sock.setblocking(False)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_head_readable, conn))

    def _on_head_readable(self, conn: TConn, _sock: Any) -> None:
        head = self.pending_heads.get(conn)
        if head is None:  # dropped while the poller held its event
            return
        try:
            chunk = conn.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:  # the client went away before finishing its request
            self._refuse(self.pending_heads.remove(conn), None)
            return
        if head.feed(chunk):
            self.pending_heads.remove(conn)
            self._unregister(conn)
            self._head_complete(head, time.monotonic())
        elif len(head.data) > MAX_HEAD_SIZE:
            self.pending_heads.remove(conn)
            self._refuse(
                head,
                error_answer(
                    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                    f"The request line and headers exceed {MAX_HEAD_SIZE} bytes.",
                ),
            )

    def _head_complete(self, head: PendingHead[TConn], now: float) -> None:
        """Give the head to Gunicorn's parser, as if it had read it, and queue for a thread."""
        conn = head.conn
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
        conn.parser.unreader.unread(bytes(head.data))
        conn.data_ready = True  # the stock handler must not wait for data again
        setattr(conn, _ARRIVED, now)
        self._dispatch(conn)

    # -- threads: at most cfg.threads busy; the rest wait here, where their age is visible --

    def _dispatch(self, conn: TConn) -> None:
        if getattr(conn, _ARRIVED, None) is None:  # a connection whose head a thread reads
            setattr(conn, _ARRIVED, time.monotonic())
        if self.busy_threads < self.cfg.threads:
            self.busy_threads += 1
            super().enqueue_req(conn)
        else:
            self.ready_conns.append(conn)

    def finish_request(self, conn: TConn, fs: Any) -> None:
        """A thread is free: the connection's next request needs a new head, then run the next."""
        self.busy_threads -= 1
        setattr(conn, _ARRIVED, None)
        super().finish_request(conn, fs)
        self._expire(time.monotonic())
        while self.ready_conns and self.busy_threads < self.cfg.threads:
            self._dispatch(self.ready_conns.popleft())

    def handle(self, conn: TConn) -> Any:
        """Serve one request in a thread, remembering when it arrived for the app's environ."""
        self._handling.arrived = getattr(conn, _ARRIVED, None)
        try:
            return super().handle(conn)
        finally:
            self._handling.arrived = None

    def load_wsgi(self) -> None:
        """Wrap the app so its environ says when the request's head arrived."""
        super().load_wsgi()
        app = self.wsgi
        # The app's own 429 says to retry after the default time limit (by then every default
        # run holding a slot has ended); a thread frees up by then too.
        defaults = getattr(app, "run_defaults", None)
        if defaults is not None and defaults.time:
            self.retry_after = max(1, math.ceil(defaults.time))

        def stamped(environ: dict[str, Any], start_response: Any) -> Any:
            arrived = getattr(self._handling, "arrived", None)
            if arrived is not None:
                environ[ARRIVED_ENVIRON_KEY] = arrived
            return app(environ, start_response)

        self.wsgi = stamped

    # -- deadlines, checked after every wake-up of the event loop --

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        """Wake up in time for the next deadline, then enforce every deadline that passed."""
        now = time.monotonic()
        deadlines = [self.pending_heads.next_deadline()]
        if self.ready_conns:
            deadlines.append(getattr(self.ready_conns[0], _ARRIVED) + self.queue_timeout)
        for deadline in deadlines:
            if deadline is not None:
                timeout = min(timeout, max(0.0, deadline - now))
        super().wait_for_and_dispatch_events(timeout)
        self._expire(time.monotonic())

    def _expire(self, now: float) -> None:
        if not self.alive:
            if self._stopping_since is None:
                self._stopping_since = now
            self.pending_heads.cap_deadlines(self._stopping_since + STOP_KEEPALIVE_LINGER)
        for head in self.pending_heads.pop_expired(now):
            self._refuse(head, self._timeout_answer(head))
        while self.ready_conns:
            conn = self.ready_conns[0]
            if getattr(conn, _ARRIVED) + self.queue_timeout > now:
                break
            self.ready_conns.popleft()
            metrics.QUEUE_REJECTIONS.inc()
            log.info("No thread became free for %.1f s; answering 429", self.queue_timeout)
            self._close(conn, self._busy_answer())

    # -- answers and closing --

    def _timeout_answer(self, head: PendingHead[TConn]) -> bytes | None:
        if not head.data:  # an idle connection, e.g. kept alive: close it quietly
            return None
        return error_answer(
            HTTPStatus.REQUEST_TIMEOUT,
            f"The request line and headers did not arrive within {self.serving.head_timeout:g} "
            "seconds.",
        )

    def _crowded_answer(self, head: PendingHead[TConn]) -> bytes:
        return error_answer(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "Too many connections are still sending their request headers; this one was the "
            f"oldest (at most {self.serving.max_pending_heads_per_client} per client and "
            f"{self.serving.max_pending_heads} in all per worker).",
            retry_after=1,
        )

    def _busy_answer(self) -> bytes:
        return error_answer(
            HTTPStatus.TOO_MANY_REQUESTS,
            f"No worker thread became free within {self.queue_timeout:g} seconds; retry after "
            f"{self.retry_after} seconds.",
            retry_after=self.retry_after,
        )

    def _refuse(self, head: PendingHead[TConn] | None, answer: bytes | None) -> None:
        """Stop waiting for a head: unregister its connection, answer if asked, close."""
        if head is None:
            return
        self._unregister(head.conn)
        self._close(head.conn, answer)

    def _unregister(self, conn: TConn) -> None:
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass  # never registered (its head was complete at once), or already closed

    def _close(self, conn: TConn, answer: bytes | None) -> None:
        """Write a short answer if the socket takes it at once, and close the connection."""
        if answer is not None:
            try:
                conn.sock.setblocking(False)
                conn.sock.send(answer)
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EPIPE, errno.ECONNRESET):
                    log.debug("Could not answer %s: %s", conn.client, error)
        self.nr_conns -= 1
        conn.close()
