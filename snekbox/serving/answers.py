"""The few complete HTTP answers the worker writes itself, without the app or Gunicorn's parser.

They look like the app's errors (`{"title", "description"}` JSON, the title being the status
line as Falcon writes it), so a client cannot tell who refused it, and they always close the
connection: the worker writes them when it will not read the rest of a request.
"""

from __future__ import annotations

import json
from http import HTTPStatus

__all__ = ["error_answer"]


def error_answer(status: HTTPStatus, description: str, retry_after: int | None = None) -> bytes:
    """A whole `Connection: close` response with a JSON error body."""
    title = f"{status.value} {status.phrase}"
    body = json.dumps({"title": title, "description": description}).encode()
    lines = [
        f"HTTP/1.1 {title}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if retry_after is not None:
        lines.append(f"Retry-After: {retry_after}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
