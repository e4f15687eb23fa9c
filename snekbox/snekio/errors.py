"""Errors raised while moving files into and out of a run's memfs."""

from __future__ import annotations

__all__ = ("FileParsingError", "IllegalPathError", "ParsingError")


class ParsingError(ValueError):
    """A file sent with a request cannot be decoded (e.g. invalid base64)."""


class IllegalPathError(ParsingError):
    """A request file's path is absolute, contains NUL, or climbs out of the run's home."""


class FileParsingError(RuntimeError):
    """The files a run left behind cannot be collected safely.

    Its message is shown to the client as the run's stdout, so it is user-facing and prefixed
    with the class name by the caller.
    """
