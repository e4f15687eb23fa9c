"""GET /openapi.json: the OpenAPI 3.1 description of this API, shipped with the package."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import falcon

__all__ = ["OpenAPIResource", "load_openapi", "openapi_bytes"]

OPENAPI_FILE = "openapi.json"


def openapi_bytes() -> bytes:
    """The document as stored in the package (snekbox/api/openapi.json)."""
    return resources.files("snekbox.api").joinpath(OPENAPI_FILE).read_bytes()


def load_openapi() -> dict[str, Any]:
    """The document, parsed."""
    return json.loads(openapi_bytes())


class OpenAPIResource:
    """Serve the document's bytes as stored, read once."""

    def __init__(self) -> None:
        self.body = openapi_bytes()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Answer with the OpenAPI document."""
        resp.content_type = falcon.MEDIA_JSON
        resp.data = self.body
