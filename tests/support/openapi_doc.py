"""Check real answers against snekbox/api/openapi.json (shared by unit and integration tests)."""

from __future__ import annotations

import json

from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from snekbox.api.resources.openapi import load_openapi

DOCUMENT = load_openapi()
DOCUMENT_URI = "urn:snekbox:openapi"
_REGISTRY = Registry().with_resource(DOCUMENT_URI, DRAFT202012.create_resource(DOCUMENT))
_EVAL_RESPONSE = DOCUMENT["components"]["schemas"]["EvalResponse"]
# The original's keys of an /eval answer (test_openapi.py pins them), and the ones "details" adds.
ORIGINAL_FIELDS: tuple[str, ...] = tuple(_EVAL_RESPONSE["required"])
USAGE_FIELDS: frozenset[str] = frozenset(_EVAL_RESPONSE["properties"]) - set(ORIGINAL_FIELDS)
# Falcon answers these on any route; the document describes them once, in info.description.
GENERIC_STATUSES = {404, 405}


def validator_for(pointer: str) -> Draft202012Validator:
    """A validator for the schema at `pointer` ("#/components/schemas/...") in the document."""
    return Draft202012Validator({"$ref": f"{DOCUMENT_URI}{pointer}"}, registry=_REGISTRY)


def check_response(
    path: str, method: str, status: int, content_type: str | None, body: bytes
) -> None:
    """Assert that the answer is one the document describes for this operation."""
    method = method.lower()
    operation = DOCUMENT["paths"].get(path, {}).get(method)
    documented = operation["responses"].get(str(status)) if operation else None
    if documented is None:
        assert status in GENERIC_STATUSES, f"{method} {path} answered undocumented {status}"
        errors = validator_for("#/components/schemas/Error").iter_errors(json.loads(body))
        assert not [error.message for error in errors]
        return
    media_type = (content_type or "").partition(";")[0].strip()
    assert media_type in documented["content"], (
        f"{method} {path} {status} answered {content_type}, documented "
        f"{list(documented['content'])}"
    )
    if media_type != "application/json":
        return
    pointer = (
        f"#/paths/{escape(path)}/{method}/responses/{status}/content/{escape(media_type)}/schema"
    )
    errors = [error.message for error in validator_for(pointer).iter_errors(json.loads(body))]
    assert not errors, f"{method} {path} {status}: {errors}"


def escape(segment: str) -> str:
    """A JSON pointer segment for a key such as "/eval" or "application/json"."""
    return segment.replace("~", "~0").replace("/", "~1")
