"""Which command lines a pre-started interpreter can run exactly as a fresh one would.

A pre-started interpreter has already parsed its own options and imported `site`, so a run
may take one only when its arguments are one of the three forms the launcher reproduces:

    -c CODE [ARG ...]       code from the command line
    -m MODULE [ARG ...]     a module run as __main__ (through runpy, as CPython does)
    SCRIPT [ARG ...]        a script file the request itself sends (one of its ``files``)

Everything else runs cold, in a jail started for it: interpreter options (``-I``, ``-S``,
``-E``, ``-X ...``, ``-O``, ``-R``, ``-B``, ``-u``, ``-d``, ``-W ...``, ``-q``, ``-v``, combined
forms such as ``-Ic`` or ``-cCODE``), reading the program from stdin (``-`` or no arguments),
a script that is not one of the request's files or may be a zip archive, and arguments the
kernel would refuse to pass (a NUL byte, text that cannot be encoded, a single argument of
128 KiB or more, or more than `MAX_TOTAL_ARGS` bytes in all), so that their error is the one
a cold run gives.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence

from snekbox.snekio import FileAttachment

__all__ = ("MAX_ARG_BYTES", "MAX_TOTAL_ARGS", "encode_arguments", "is_pooled_form")

MAX_ARG_BYTES = 128 * 1024 - 1
"""The kernel refuses a single argument of 32 pages (``MAX_ARG_STRLEN``) or more."""
MAX_TOTAL_ARGS = 1024 * 1024
"""Well below the kernel's total for argv and environment (a quarter of the stack limit)."""
ZIP_END_RECORD = b"PK\x05\x06"
"""CPython runs a file holding a zip archive's end record as a zip application."""
ZIP_END_SEARCH = 65536 + 22
"""The end record sits within this many bytes of the end (its comment is at most 64 KiB)."""
JAIL_HOME = "/home"


def encode_arguments(py_args: Sequence[str]) -> bytes | None:
    """The arguments as the launcher receives them, or None when one cannot be passed on."""
    encoded = []
    for arg in py_args:
        try:
            data = os.fsencode(arg)
        except UnicodeError:
            return None
        if b"\0" in data or len(data) > MAX_ARG_BYTES:
            return None
        encoded.append(data)
    message = b"\0".join(encoded)
    return message if len(message) <= MAX_TOTAL_ARGS else None


def _script_file(path: str, files: Sequence[FileAttachment]) -> FileAttachment | None:
    """The request file ``path`` names (relative to the jail's home, or absolute in it)."""
    if path.startswith(JAIL_HOME + "/"):
        path = path[len(JAIL_HOME) + 1 :]
    wanted = posixpath.normpath(path)
    for attachment in files:
        if posixpath.normpath(attachment.path) == wanted:
            return attachment
    return None


def is_pooled_form(py_args: Sequence[str], files: Sequence[FileAttachment]) -> bool:
    """Whether a pre-started interpreter runs ``py_args`` exactly as a fresh one would."""
    if not py_args or encode_arguments(py_args) is None:
        return False
    first = py_args[0]
    if first == "-c":
        return len(py_args) >= 2
    if first == "-m":
        return len(py_args) >= 2 and py_args[1] != "" and not py_args[1].startswith("-")
    if first == "" or first.startswith("-"):
        return False
    script = _script_file(first, files)
    return script is not None and ZIP_END_RECORD not in script.content[-ZIP_END_SEARCH:]
