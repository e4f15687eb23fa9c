"""Parse an /eval body into one fully checked run, or raise the 400 that says why not.

This is the only module that answers 400 to a request body (the body reader's 400s are about
bytes and JSON, not a request): the schema, the files, the args, the interpreter and the
limits are checked here, in that order, and what comes out needs no further checking.

The JSON schema is compiled once at import. Everything checked here is cheap next to a sandbox
start, and catches what would otherwise surface as a 500 deep in the engine: arguments the
kernel refuses to `execve`, paths the file system cannot hold, deeply nested values. What the
engine already answers itself (a NUL in an argument, a file in the way of a directory) is left
to it, so those keep the original's `returncode: null` answers.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import falcon
from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.exceptions import best_match

from snekbox.api.errors import (
    ARGS_TOO_LONG_TITLE,
    EXECUTABLE_MISSING_TITLE,
    EXECUTABLE_NOT_EXECUTABLE_TITLE,
    EXECUTABLE_NOT_FILE_TITLE,
    FILE_ERROR_TITLE,
    LIMIT_TOO_HIGH_TITLE,
    SCHEMA_ERROR_TITLE,
    TOO_DEEP_TITLE,
)
from snekbox.api.quoting import bounded_repr
from snekbox.limits.table import LIMITS, EvalLimits
from snekbox.services.limit_policy import LimitAboveMaximumError, LimitPolicy
from snekbox.snekio import FileAttachment, IllegalPathError, ParsingError

__all__ = ["EVAL_SCHEMA", "EvalRequest", "RequestParser"]

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

# How each limit is counted, for the 400 naming one above its maximum.
LIMIT_UNITS = {limit.name: limit.unit for limit in LIMITS}


@dataclass(frozen=True, slots=True)
class EvalRequest:
    """One /eval request, checked: what the engine runs and how the answer is shaped."""

    args: list[str]
    files: list[FileAttachment]
    """Decoded, with paths that stay inside the run's home and fit its file system."""
    executable_path: str | None
    """An executable file under the interpreter root, or None for the engine's default."""
    limits: EvalLimits | None = None
    """The request's limits, each within the server's maximum; None when it set none."""
    details: bool = False
    """Whether the answer adds the run's status and usage to the original's three keys."""

    def engine_options(self) -> dict[str, Any]:
        """Keyword arguments for `python3`: only what the request set.

        A request without them reaches the engine exactly as it always did.
        """
        options: dict[str, Any] = {}
        if self.executable_path is not None:
            options["executable_path"] = self.executable_path
        if self.limits is not None:
            options["limits"] = self.limits
        return options


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


def _parse_file(index: int, entry: dict[str, Any]) -> FileAttachment:
    """Decode one attached file, checking its path once: storable here, safe in snekio.

    `FileAttachment.from_dict` applies the original's rules (relative, never above the home)
    and base64 decoding, with the original's exact error texts, which clients match on.
    """
    problem = _path_problem(entry["path"])
    if problem is not None:
        raise falcon.HTTPBadRequest(
            title=FILE_ERROR_TITLE,
            description=f"files[{index}]: the path {bounded_repr(entry['path'], 80)} {problem}.",
        )
    try:
        return FileAttachment.from_dict(entry)
    except (ParsingError, IllegalPathError) as error:
        raise falcon.HTTPBadRequest(title=FILE_ERROR_TITLE, description=str(error)) from None


def _check_executable(path: str, root: str) -> None:
    """Raise a 400 unless `path` is an executable regular file under the interpreter `root`.

    Any other path gets one answer, whether or not it exists, so the check tells a client
    nothing about the host's files. Under `root`, which the jail also sees read-only, the
    original's three titles turn a wrong interpreter into a clear 400 instead of a fatal
    NsJail error.
    """
    shown = bounded_repr(path, 120)
    if not _is_under(path, root):
        raise falcon.HTTPBadRequest(
            title=EXECUTABLE_MISSING_TITLE,
            description=f"{shown} is not an interpreter of this server; GET /info lists them.",
        )
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # ValueError: NUL or unencodable characters in the path
        raise falcon.HTTPBadRequest(
            title=EXECUTABLE_MISSING_TITLE, description=f"{shown} does not exist on this server."
        ) from None
    if not stat.S_ISREG(mode):
        raise falcon.HTTPBadRequest(
            title=EXECUTABLE_NOT_FILE_TITLE, description=f"{shown} is not a regular file."
        )
    if not os.access(path, os.X_OK):
        raise falcon.HTTPBadRequest(
            title=EXECUTABLE_NOT_EXECUTABLE_TITLE, description=f"{shown} is not executable."
        )


def _is_under(path: str, root: str) -> bool:
    """Whether `path`, as written and with every link resolved, lies below `root`."""
    try:
        written = os.path.normpath(path)
        resolved = os.path.realpath(path)
        real_root = os.path.realpath(root)
    except ValueError:  # NUL in the path
        return False
    return (
        path.startswith("/")
        and os.path.commonpath((written, root)) == os.path.normpath(root)
        and os.path.commonpath((resolved, real_root)) == real_root
        and written != os.path.normpath(root)
    )


@dataclass(frozen=True, slots=True)
class RequestParser:
    """Parse /eval bodies against this server's limits and interpreters."""

    limits: LimitPolicy
    interpreter_root: str
    """The only directory `executable_path` may name an interpreter in (what /info lists)."""

    def parse(self, body: object) -> EvalRequest:
        """Check a parsed JSON body and build the run it asks for; raise a 400 otherwise."""
        _validate_schema(body)
        assert isinstance(body, dict)
        args = list(body.get("args", ["-c"]))
        if "input" in body:
            args.append(body["input"])
        _check_args(args)
        files = [_parse_file(index, entry) for index, entry in enumerate(body.get("files", ()))]
        executable_path = body.get("executable_path")
        if executable_path is not None:
            _check_executable(executable_path, self.interpreter_root)
        return EvalRequest(
            args=args,
            files=files,
            executable_path=executable_path,
            limits=self._resolve_limits(body.get("limits")),
            details=body.get("details", False),
        )

    def _resolve_limits(self, requested: Mapping[str, Any] | None) -> EvalLimits | None:
        """The request's limits within the server's maxima, or the 400 naming one above."""
        if requested is not None:
            # JSON Schema counts 2.0 as an integer; NsJail's options need "2".
            requested = {name: int(value) for name, value in requested.items()}
        try:
            return self.limits.resolve(requested)
        except LimitAboveMaximumError as error:
            unit = LIMIT_UNITS[error.name]
            raise falcon.HTTPBadRequest(
                title=LIMIT_TOO_HIGH_TITLE,
                description=f"limits.{error.name} is {error.value} {unit}; this server allows "
                f"at most {error.maximum} {unit}.",
            ) from None
