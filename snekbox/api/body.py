"""Read and parse a JSON request body within a size cap and a stall timeout.

Falcon's media handling would read the body with no deadline, and a client that sends its
headers and half a body would then hold a Gunicorn thread for as long as it keeps the socket
open. Reading here lets the server answer 413 before reading an oversized body, 408 to a
stalled client, and 400 to JSON that is malformed or nested past the parser's recursion limit.

Memory: a body is held in a buffer that grows as its bytes arrive, never sized from its
Content-Length (a client may announce a gigabyte and send one byte). All bodies a process is
receiving or parsing share one budget, `SNEKBOX_MAX_BODY_MEMORY` bytes (by default the body
size cap, so one largest body or many small ones); a body that would take the process past it
is answered 503 and its buffer freed at once.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any

import falcon

from snekbox.api.errors import INCOMPLETE_BODY_TITLE, INVALID_JSON_TITLE, TOO_DEEP_TITLE
from snekbox.services.settings import max_body_size_from_env
from snekbox.utils.env import positive_number

__all__ = ["BODY_MEMORY_ENV", "BodyMemoryBudget", "process_budget", "read_json_body"]

log = logging.getLogger(__name__)

JSON_MEDIA_TYPE = "application/json"
# A body is read (and its memory reserved from the budget) at most this much at a time.
CHUNK_SIZE = 1024 * 1024
BODY_MEMORY_ENV = "SNEKBOX_MAX_BODY_MEMORY"


class BodyMemoryBudget:
    """Bytes of request bodies this process may hold at once, shared by all its threads."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a body memory budget needs at least one byte, not {limit}")
        self.limit = limit
        self.held = 0
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BodyMemoryBudget:
        """`SNEKBOX_MAX_BODY_MEMORY`, or by default the body size cap (one largest body)."""
        if env is None:
            env = os.environ
        limit = positive_number(env, BODY_MEMORY_ENV, int)
        return cls(int(limit) if limit else max_body_size_from_env(env))

    def take(self, size: int) -> bool:
        """Reserve `size` more bytes if they fit; False (and nothing reserved) if not."""
        with self._lock:
            if self.held + size > self.limit:
                return False
            self.held += size
            return True

    def give_back(self, size: int) -> None:
        with self._lock:
            self.held -= size


_process_budget: BodyMemoryBudget | None = None
_process_budget_lock = threading.Lock()


def process_budget() -> BodyMemoryBudget:
    """The budget of this process, read from the environment on first use (after a fork)."""
    global _process_budget
    with _process_budget_lock:
        if _process_budget is None:
            _process_budget = BodyMemoryBudget.from_env()
        return _process_budget


class _BodyBuffer:
    """A body's bytes so far, each chunk reserved from the budget before it is read."""

    def __init__(self, budget: BodyMemoryBudget, timeout: float) -> None:
        self.budget = budget
        self.timeout = timeout
        self.data = bytearray()
        self.reserved = 0

    def read_chunk(self, read: Any, size: int) -> bytes:
        """Reserve room for `size` bytes, `read(size)`, and keep what came (reservation shrinks)."""
        if not self.budget.take(size):
            raise self._over_budget()
        self.reserved += size
        chunk: bytes = read(size)
        self.data += chunk
        unused = size - len(chunk)
        self.budget.give_back(unused)
        self.reserved -= unused
        return chunk

    def release(self) -> None:
        self.budget.give_back(self.reserved)
        self.reserved = 0
        self.data = bytearray()

    def _over_budget(self) -> falcon.HTTPServiceUnavailable:
        retry_after = max(1, math.ceil(self.timeout))
        log.info(
            "Request bodies hold this process's %d byte budget; answering 503", self.budget.limit
        )
        return falcon.HTTPServiceUnavailable(
            description=f"The server is already holding its limit of {self.budget.limit} bytes "
            f"of request bodies ({BODY_MEMORY_ENV}); retry after {retry_after} seconds.",
            retry_after=retry_after,
        )


@contextmanager
def _body_buffer(budget: BodyMemoryBudget, timeout: float) -> Iterator[_BodyBuffer]:
    """A buffer whose memory goes back to the budget when the body has been parsed (or failed)."""
    buffer = _BodyBuffer(budget, timeout)
    try:
        yield buffer
    finally:
        buffer.release()


def _check_content_type(req: falcon.Request) -> None:
    """Accept JSON, or no Content-Type at all (older clients omit it); anything else is 415."""
    content_type = req.content_type
    if content_type is None:
        return
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type != JSON_MEDIA_TYPE:
        raise falcon.HTTPUnsupportedMediaType(
            description=f"{content_type} is an unsupported media type."
        )


def _too_large(size: int | str, limit: int) -> falcon.HTTPContentTooLarge:
    """The 413 for a body over the cap, sent before reading any of it.

    Gunicorn then drains the body for at most a few seconds before it closes the connection.
    """
    return falcon.HTTPContentTooLarge(
        description=f"The request body is {size} bytes; this server accepts at most {limit}."
    )


def _read_exactly(stream: IO[bytes], length: int, buffer: _BodyBuffer) -> None:
    """Read `length` bytes into `buffer`, which grows only as they arrive."""
    while len(buffer.data) < length:
        if not buffer.read_chunk(stream.read, min(CHUNK_SIZE, length - len(buffer.data))):
            break
    if len(buffer.data) < length:
        raise falcon.HTTPBadRequest(
            title=INCOMPLETE_BODY_TITLE,
            description=f"The body ended after {len(buffer.data)} of the {length} bytes "
            "announced by its Content-Length.",
        )


def _read_to_end(stream: IO[bytes], limit: int, buffer: _BodyBuffer) -> None:
    """Read a body of unknown length (chunked transfer encoding), refusing more than `limit`."""
    while buffer.read_chunk(stream.read, CHUNK_SIZE):
        if len(buffer.data) > limit:
            raise _too_large(f"more than {limit}", limit)


def _read_body(req: falcon.Request, max_size: int, timeout: float, buffer: _BodyBuffer) -> None:
    """Read the raw body; under Gunicorn each socket read may wait at most `timeout` seconds."""
    length = req.content_length
    if length is not None and length > max_size:
        raise _too_large(length, max_size)

    # Gunicorn exposes the client socket; other servers (and falcon.testing) read unbounded.
    sock: socket.socket | None = req.env.get("gunicorn.socket")
    previous_timeout = sock.gettimeout() if sock is not None else None
    if sock is not None:
        sock.settimeout(timeout)
    try:
        if length is None:
            _read_to_end(req.stream, max_size, buffer)
        else:
            _read_exactly(req.bounded_stream, length, buffer)
    except TimeoutError:
        log.info("Client %s sent no body data for %.1f s; answering 408", req.remote_addr, timeout)
        if sock is not None:
            # Gunicorn drains the rest of a body before it reuses or closes a connection;
            # with reads shut it sees end-of-file at once instead of waiting on a client that
            # has stopped talking, and closes the connection after the 408.
            try:
                sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        raise falcon.HTTPError(
            falcon.HTTP_408,
            description=f"The request body stalled: no data arrived for {timeout:g} seconds.",
        ) from None
    finally:
        if sock is not None:
            sock.settimeout(previous_timeout)


def read_json_body(
    req: falcon.Request,
    *,
    max_size: int,
    timeout: float,
    budget: BodyMemoryBudget | None = None,
) -> Any:
    """Return the request's JSON body, or raise the 4xx (or 503) that says what is wrong.

    The body's memory counts against `budget` (this process's by default) until it is parsed.
    """
    _check_content_type(req)
    with _body_buffer(budget if budget is not None else process_budget(), timeout) as buffer:
        _read_body(req, max_size, timeout, buffer)
        return _parse_json(buffer.data)


def _parse_json(data: bytearray) -> Any:
    try:
        return json.loads(data)
    except RecursionError:
        raise falcon.HTTPBadRequest(
            title=TOO_DEEP_TITLE,
            description="The JSON body nests arrays or objects deeper than the server parses.",
        ) from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, over-long integers
        raise falcon.HTTPBadRequest(
            title=INVALID_JSON_TITLE, description=f"Could not parse JSON body - {error}"
        ) from None
