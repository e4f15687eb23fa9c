"""Turn a parsed /eval body into the arguments of one sandbox run, or a 400 that says why not.

The JSON schema is compiled once at import. Everything checked here is cheap next to a sandbox
start, and catches what would otherwise surface as a 500 deep in the engine: arguments the
kernel refuses to `execve`, paths the file system cannot hold, deeply nested values. What the
engine already answers itself (a NUL in an argument, a file in the way of a directory) is left
to it, so those keep the original's `returncode: null` answers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import falcon
from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.exceptions import best_match

from snekbox.api.errors import (
    ARGS_TOO_LONG_TITLE,
    FILE_ERROR_TITLE,
    SCHEMA_ERROR_TITLE,
    TOO_DEEP_TITLE,
)
from snekbox.limits.table import LIMITS
from snekbox.snekio import FileAttachment, IllegalPathError, ParsingError

__all__ = [
    "EVAL_SCHEMA",
    "EvalRequest",
    "bounded_repr",
    "parse_eval_request",
]

EVAL_SCHEMA: Mapping[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "input": {"type": "string"},
        "args": {"type": "array", "items": {"type": "string"}},
        "files": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    # Relative (no leading "/"), free of NUL (no file name can hold one) and,
                    # as the original refuses it, of a literal backslash-zero.
                    "path": {"type": "string", "pattern": r"^(?!/)(?!.*\\0)[^\x00]*$"},
                    "content": {"type": "string"},
                },
                "required": ["path"],
            },
        },
        "executable_path": {"type": "string"},
        # Opt-in to the status and usage fields; without it the answer is the original's.
        "details": {"type": "boolean"},
        # Per-run limits; each may go up to the server's maximum (checked after the schema,
        # since the maxima are configuration, not schema).
        "limits": {
            "type": "object",
            "properties": {
                limit.name: {"type": "integer", "minimum": limit.floor} for limit in LIMITS
            },
            # A misspelt limit would otherwise be ignored while the client believes it applies.
            "additionalProperties": False,
        },
    },
    # Unknown keys are ignored: some clients send extra fields.
    "anyOf": [{"required": ["input"]}, {"required": ["args"]}],
}

# Linux refuses a single argv string longer than 32 pages (MAX_ARG_STRLEN), NUL included.
MAX_ARG_BYTES = 32 * os.sysconf("SC_PAGE_SIZE") - 1
# argv and the environment share ARG_MAX; NsJail's own options and the jail's environment come
# out of the same budget, twice over (snekbox execs NsJail, NsJail execs Python).
ARGV_RESERVE = 64 * 1024
MAX_ARGV_BYTES = os.sysconf("SC_ARG_MAX") - ARGV_RESERVE
POINTER_SIZE = 8

# A file name's length limit (NAME_MAX) and a path's (PATH_MAX, less room for the memfs root).
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096 - 512
# Deeper trees are not real projects, and directory creation may recurse once per level.
MAX_PATH_DEPTH = 64

# How much of a rejected value an error message quotes.
REPR_LIMIT = 200
REPR_DEPTH = 8


@dataclass(frozen=True, slots=True)
class EvalRequest:
    """What one /eval request asks the engine to run."""

    args: list[str]
    files: list[FileAttachment]
    executable_path: str | None
    limits: dict[str, int] | None = None
    """The request's `limits` as integers, not yet checked against the server's maxima."""
    details: bool = False
    """Whether the answer adds the run's status and usage to the original's three keys."""


def bounded_repr(value: object, limit: int = REPR_LIMIT, depth: int = 0) -> str:
    """`repr(value)` for small values; a cut-off version for large or deep ones.

    jsonschema quotes the whole offending instance in its messages, and the instance can be a
    gigabyte of files: building that string would cost more memory than the request itself.
    For values that fit the limit the text is identical to `repr`, so the messages clients
    know ("400 is not of type 'array'") are unchanged.
    """
    if isinstance(value, str):
        return repr(value) if len(value) <= limit else repr(value[:limit]) + "..."
    if isinstance(value, list | dict):
        opening, closing = "[]" if isinstance(value, list) else "{}"
        if depth >= REPR_DEPTH:
            return f"{opening}...{closing}"
        items = value.items() if isinstance(value, dict) else value
        parts: list[str] = []
        used = 2
        for item in items:
            if used >= limit:
                parts.append("...")
                break
            if isinstance(value, dict):
                key, element = item
                text = bounded_repr(key, limit - used, depth + 1) + ": "
                text += bounded_repr(element, max(limit - used - len(text), 0), depth + 1)
            else:
                text = bounded_repr(item, limit - used, depth + 1)
            parts.append(text)
            used += len(text) + 2
        return opening + ", ".join(parts) + closing
    # JSON leaves it: numbers (at most 4300 digits), booleans, None.
    return repr(value)


def _type(
    validator: Any, types: str | list[str], instance: object, schema: Any
) -> Iterator[ValidationError]:
    """The "type" keyword, quoting the instance with `bounded_repr`."""
    types = [types] if isinstance(types, str) else types
    if not any(validator.is_type(instance, kind) for kind in types):
        names = ", ".join(repr(kind) for kind in types)
        yield ValidationError(f"{bounded_repr(instance)} is not of type {names}")


def _any_of(
    validator: Any, subschemas: list[Any], instance: object, schema: Any
) -> Iterator[ValidationError]:
    """The "anyOf" keyword, quoting the instance with `bounded_repr`."""
    errors: list[ValidationError] = []
    for index, subschema in enumerate(subschemas):
        found = list(validator.descend(instance, subschema, schema_path=index))
        if not found:
            return
        errors.extend(found)
    message = f"{bounded_repr(instance)} is not valid under any of the given schemas"
    yield ValidationError(message, context=errors)


def _pattern(
    validator: Any, pattern: str, instance: object, schema: Any
) -> Iterator[ValidationError]:
    """The "pattern" keyword, quoting the instance with `bounded_repr`."""
    if validator.is_type(instance, "string") and not re.search(pattern, instance):
        yield ValidationError(f"{bounded_repr(instance)} does not match {pattern!r}")


_BoundedValidator = validators.extend(
    Draft202012Validator, {"type": _type, "anyOf": _any_of, "pattern": _pattern}
)
_BoundedValidator.check_schema(EVAL_SCHEMA)
_VALIDATOR = _BoundedValidator(EVAL_SCHEMA)


def _too_deep() -> falcon.HTTPBadRequest:
    """The 400 for values nested past Python's recursion limit."""
    return falcon.HTTPBadRequest(
        title=TOO_DEEP_TITLE,
        description="The request nests arrays or objects too deeply to be processed.",
    )


def _validate_schema(body: object) -> None:
    """Raise a 400 with jsonschema's best message when the body does not fit EVAL_SCHEMA."""
    try:
        error = best_match(_VALIDATOR.iter_errors(body))
    except RecursionError:
        raise _too_deep() from None
    if error is not None:
        raise falcon.HTTPBadRequest(title=SCHEMA_ERROR_TITLE, description=error.message)


def _check_args(args: Sequence[str]) -> None:
    """Reject args too long for `execve`, so the client hears why instead of a failed run."""
    total = 0
    for index, arg in enumerate(args):
        # Lone surrogates cannot reach the kernel at all; the engine reports those itself.
        size = len(arg.encode("utf-8", "surrogatepass"))
        if size > MAX_ARG_BYTES:
            raise falcon.HTTPBadRequest(
                title=ARGS_TOO_LONG_TITLE,
                description=f"Argument {index} is {size} bytes long; the operating system "
                f"accepts at most {MAX_ARG_BYTES} bytes per argument. Send long code as a "
                "file instead.",
            )
        total += size + 1 + POINTER_SIZE
    if total > MAX_ARGV_BYTES:
        raise falcon.HTTPBadRequest(
            title=ARGS_TOO_LONG_TITLE,
            description=f"The arguments take {total} bytes; the operating system accepts at "
            f"most {MAX_ARGV_BYTES} bytes for all of them. Send long code as a file instead.",
        )


def _path_problem(path: str) -> str | None:
    """Say why the file system could not hold `path`, or None when it can."""
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"is not valid Unicode text ({error.reason} at position {error.start})"
    if len(encoded) > MAX_PATH_BYTES:
        return f"is {len(encoded)} bytes long; paths may be at most {MAX_PATH_BYTES} bytes"
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if len(parts) > MAX_PATH_DEPTH:
        return f"is nested {len(parts)} levels deep; the limit is {MAX_PATH_DEPTH}"
    for part in parts:
        if len(part.encode("utf-8")) > MAX_NAME_BYTES:
            return f"has a name longer than {MAX_NAME_BYTES} bytes: {bounded_repr(part, 40)}"
    return None


def _parse_files(entries: Sequence[Mapping[str, str]]) -> list[FileAttachment]:
    """Decode the attached files, with a 400 naming the first one that cannot be written."""
    files: list[FileAttachment] = []
    for index, entry in enumerate(entries):
        problem = _path_problem(entry["path"])
        if problem is not None:
            raise falcon.HTTPBadRequest(
                title=FILE_ERROR_TITLE,
                description=f"files[{index}]: the path {bounded_repr(entry['path'], 80)} "
                f"{problem}.",
            )
        try:
            files.append(FileAttachment.from_dict(entry))
        except (ParsingError, IllegalPathError) as error:
            # The original's exact description, which clients match on.
            raise falcon.HTTPBadRequest(title=FILE_ERROR_TITLE, description=str(error)) from None
    return files


def parse_eval_request(body: object) -> EvalRequest:
    """Validate a parsed JSON body and build the run it asks for; raise a 400 otherwise."""
    _validate_schema(body)
    assert isinstance(body, dict)
    args = list(body.get("args", ["-c"]))
    if "input" in body:
        args.append(body["input"])
    _check_args(args)
    return EvalRequest(
        args=args,
        files=_parse_files(body.get("files", ())),
        executable_path=body.get("executable_path"),
        # JSON Schema counts 2.0 as an integer; NsJail's options need "2".
        limits={name: int(value) for name, value in body["limits"].items()}
        if "limits" in body
        else None,
        details=body.get("details", False),
    )
