"""Read and parse a JSON request body within a size cap and a stall timeout.

Falcon's media handling would read the body with no deadline, and a client that sends its
headers and half a body would then hold a Gunicorn thread for as long as it keeps the socket
open. Reading here lets the server answer 413 before reading an oversized body, 408 to a
stalled client, and 400 to JSON that is malformed or nested past the parser's recursion limit.
"""

from __future__ import annotations

import json
import logging
import socket
from typing import IO, Any

import falcon

from snekbox.api.errors import INCOMPLETE_BODY_TITLE, INVALID_JSON_TITLE, TOO_DEEP_TITLE

__all__ = ["read_json_body"]

log = logging.getLogger(__name__)

JSON_MEDIA_TYPE = "application/json"
# Bodies up to this size are read with one call; larger ones in chunks of it, into one buffer.
CHUNK_SIZE = 1024 * 1024


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


def _read_exactly(stream: IO[bytes], length: int) -> bytes | bytearray:
    """Read `length` bytes, into a single preallocated buffer when they need several reads."""
    if length <= CHUNK_SIZE:
        data = stream.read(length)
        received = len(data)
    else:
        data = bytearray(length)
        view = memoryview(data)
        received = 0
        while received < length:
            chunk = stream.read(min(CHUNK_SIZE, length - received))
            if not chunk:
                break
            view[received : received + len(chunk)] = chunk
            received += len(chunk)
    if received < length:
        raise falcon.HTTPBadRequest(
            title=INCOMPLETE_BODY_TITLE,
            description=f"The body ended after {received} of the {length} bytes announced by "
            "its Content-Length.",
        )
    return data


def _read_to_end(stream: IO[bytes], limit: int) -> bytes:
    """Read a body of unknown length (chunked transfer encoding), refusing more than `limit`."""
    chunks: list[bytes] = []
    received = 0
    while chunk := stream.read(CHUNK_SIZE):
        received += len(chunk)
        if received > limit:
            raise _too_large(f"more than {limit}", limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _read_body(req: falcon.Request, max_size: int, timeout: float) -> bytes | bytearray:
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
            return _read_to_end(req.stream, max_size)
        return _read_exactly(req.bounded_stream, length)
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


def read_json_body(req: falcon.Request, *, max_size: int, timeout: float) -> Any:
    """Return the request's JSON body, or raise the 4xx that says what is wrong with it."""
    _check_content_type(req)
    data = _read_body(req, max_size, timeout)
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
