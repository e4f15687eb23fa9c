"""Collect the files a finished run left in its memfs, without ever leaving that memfs.

Collection runs on the host as root after the jail is gone, so everything the sandboxed program
created is hostile input: symlinks to host secrets (``/etc/shadow``, ``/proc/self/environ``),
links that climb out (``../..``), FIFOs that would block a reader, and trees built to exhaust
time or recursion. The walk therefore:

- opens every directory and file relative to its parent's file descriptor with ``O_NOFOLLOW``,
  so no path is ever resolved through a link the program planted;
- follows a symlink only when its fully resolved target is a regular file inside the run's
  memfs, and reads that file through ``O_NOFOLLOW`` as well;
- reads only regular files (``O_NONBLOCK`` on open, ``S_ISREG`` after), skipping FIFOs, sockets
  and devices without blocking;
- charges every byte it reads (sparse files and links included) to a budget of the memfs size,
  and bounds depth, file count and wall time.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from snekbox.limits.timed import Deadline
from snekbox.snekio.attachment import FileAttachment
from snekbox.snekio.errors import FileParsingError

__all__ = ("SkippedFile", "collect_output_files", "compile_pattern")

log = logging.getLogger(__name__)

MAX_DEPTH = 64
"""Directory levels below the output directory that are walked before giving up."""

_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """An output file that was left out of the response, and why."""

    path: str
    reason: str


MAX_SKIPPED_LISTED = 100
"""Skipped files named in a collection; more are only counted, so that an answer's size stays
bounded by the file limits however many hidden files a program leaves."""


@dataclass(slots=True)
class Collection:
    """The files read from a run's output directory, sorted by path, and those left out."""

    files: list[FileAttachment] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    skipped_more: int = 0
    """Skipped files beyond the first ``MAX_SKIPPED_LISTED``, counted but not named."""

    def skip(self, path: str, reason: str) -> None:
        """Record a file left out, naming it while the list has room."""
        if len(self.skipped) < MAX_SKIPPED_LISTED:
            self.skipped.append(SkippedFile(path, reason))
        else:
            self.skipped_more += 1


@dataclass(frozen=True, slots=True)
class _Candidate:
    path: str
    link_target: str | None  # host path of a followed symlink's fully resolved target


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Translate a glob over relative paths (``**/`` spans directories) into a regex.

    ``*`` and ``?`` never match ``/``; ``[!x]`` negates a class; ``**/`` matches zero or more
    whole directories, so ``**/[!_]*`` matches ``a.txt`` and ``dir/a.txt`` but not ``_a.txt``.
    """
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out), re.DOTALL)


def _check_name(name: str) -> None:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise FileParsingError("invalid bytes in filename while parsing attachments") from None


class _Walker:
    def __init__(
        self,
        boundary: Path,
        pattern: re.Pattern[str],
        unchanged: Mapping[str, int],
        deadline: Deadline,
        max_depth: int,
    ) -> None:
        self.boundary = os.path.realpath(boundary)
        self.pattern = pattern
        self.unchanged = unchanged
        self.deadline = deadline
        self.max_depth = max_depth
        self.candidates: list[_Candidate] = []
        self.collection = Collection()

    def walk(self, dir_fd: int, prefix: str, host_dir: str, depth: int) -> None:
        with os.scandir(dir_fd) as entries:
            names = [(entry.name, entry) for entry in entries]
        for name, entry in names:
            self.deadline.check()
            _check_name(name)
            path = f"{prefix}{name}"
            if name.startswith("."):
                self.collection.skip(path, "hidden")
                continue
            if entry.is_symlink():
                self._consider_link(path, os.path.join(host_dir, name))
            elif entry.is_dir(follow_symlinks=False):
                if depth + 1 > self.max_depth:
                    raise FileParsingError(
                        "Exceeded directory depth limit while parsing attachments"
                    )
                child = os.open(name, _OPEN_DIR, dir_fd=dir_fd)
                try:
                    self.walk(child, f"{path}/", os.path.join(host_dir, name), depth + 1)
                finally:
                    os.close(child)
            elif entry.is_file(follow_symlinks=False):
                self._consider_file(path, entry.stat(follow_symlinks=False))
            else:
                self.collection.skip(path, "not a regular file")

    def _consider_file(self, path: str, info: os.stat_result) -> None:
        if not self.pattern.fullmatch(path):
            self.collection.skip(path, "excluded by pattern")
        elif self.unchanged.get(path) == info.st_mtime_ns:
            pass  # an input file the program did not touch is not echoed back
        else:
            self.candidates.append(_Candidate(path, None))

    def _consider_link(self, path: str, host_path: str) -> None:
        target = os.path.realpath(host_path)
        inside = os.path.commonpath((target, self.boundary)) == self.boundary
        if not inside:
            log.info("Skipping output symlink %r: its target is outside the memfs.", path)
            self.collection.skip(path, "link outside the memfs")
        elif not os.path.isfile(target):
            self.collection.skip(path, "link to a non-file")
        elif not self.pattern.fullmatch(path):
            self.collection.skip(path, "excluded by pattern")
        else:
            self.candidates.append(_Candidate(path, target))


def collect_output_files(
    output: Path,
    boundary: Path,
    *,
    pattern: str,
    limit: int,
    byte_budget: int,
    unchanged: Mapping[str, int],
    deadline: Deadline,
    max_depth: int = MAX_DEPTH,
) -> Collection:
    """Read the new and changed files under ``output``, sorted by path.

    ``unchanged`` maps input paths to the mtime (ns) they had before the run; such files are
    skipped when their mtime is the same. At most ``limit`` files and ``byte_budget`` bytes are
    read. Raises ``FileParsingError`` for trees too deep or names that are not UTF-8, and
    ``TimeoutError`` when ``deadline`` passes.
    """
    walker = _Walker(boundary, compile_pattern(pattern), unchanged, deadline, max_depth)
    root_fd = os.open(output, _OPEN_DIR)
    try:
        walker.walk(root_fd, "", str(output), 0)
        walker.candidates.sort(key=lambda c: c.path)
        collection = walker.collection
        budget = byte_budget
        for candidate in walker.candidates:
            deadline.check()
            if len(collection.files) >= limit:
                collection.skip(candidate.path, "file limit reached")
                continue
            content = _read_regular(root_fd, candidate, budget)
            if content is None:
                collection.skip(candidate.path, "not a regular file")
            elif isinstance(content, int):
                collection.skip(candidate.path, "size budget exceeded")
            else:
                budget -= len(content)
                collection.files.append(FileAttachment(candidate.path, content))
        return collection
    finally:
        os.close(root_fd)


def _open_beneath(root_fd: int, path: str) -> int:
    """Open ``path`` below ``root_fd`` one component at a time, never following a symlink."""
    *dirs, name = path.split("/")
    dir_fd = root_fd
    try:
        for part in dirs:
            next_fd = os.open(part, _OPEN_DIR, dir_fd=dir_fd)
            if dir_fd != root_fd:
                os.close(dir_fd)
            dir_fd = next_fd
        return os.open(name, _OPEN_FILE, dir_fd=dir_fd)
    finally:
        if dir_fd != root_fd:
            os.close(dir_fd)


def _read_regular(root_fd: int, candidate: _Candidate, budget: int) -> bytes | int | None:
    """The file's bytes; its size if it exceeds ``budget``; ``None`` if it is not a file."""
    if candidate.link_target is not None:
        # realpath() resolved every link, and the result was checked to be inside the memfs.
        fd = os.open(candidate.link_target, _OPEN_FILE)
    else:
        fd = _open_beneath(root_fd, candidate.path)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        if info.st_size > budget:
            return info.st_size
        chunks: list[bytes] = []
        remaining = info.st_size
        while remaining > 0:
            chunk = os.read(fd, remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
