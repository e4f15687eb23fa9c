"""Files sent with a request and files returned from a run."""

from __future__ import annotations

import binascii
import os
import posixpath
from base64 import b64decode, b64encode
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snekbox.snekio.errors import IllegalPathError, ParsingError

__all__ = ("FileAttachment", "safe_path")

FILE_MODE = 0o666
DIR_MODE = 0o777


def safe_path(path: str) -> str:
    """Return ``path`` if it stays inside the directory it is relative to, else raise.

    The check is lexical (the run's home is empty when inputs are written), so ``a/../b`` is
    fine while ``/etc/passwd``, ``..`` and ``a/../../b`` are not.
    """
    if "\0" in path:
        raise IllegalPathError(f"File path {path!r} may not contain a null byte")
    if path.startswith("/"):
        raise IllegalPathError(f"File path '{path}' must be relative")
    normalised = posixpath.normpath(path) if path else path
    if normalised == ".." or normalised.startswith("../"):
        raise IllegalPathError(f"File path '{path}' may not traverse beyond root")
    return path


@dataclass(frozen=True, slots=True)
class FileAttachment:
    """A file's path relative to the run's home and its content."""

    path: str
    content: bytes

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileAttachment:
        """Build an attachment from a request's ``{"path", "content"?}`` object.

        Raises ``ParsingError`` for invalid base64 and ``IllegalPathError`` for a path that is
        absolute or climbs out of the home directory.
        """
        path = safe_path(data["path"])
        try:
            content = b64decode(data.get("content", ""), validate=True)
        except (binascii.Error, ValueError) as e:
            raise ParsingError(f"Invalid base64 encoding for file '{path}'") from e
        return cls(path, content)

    @classmethod
    def from_path(cls, file: str | Path, relative_to: str | Path | None = None) -> FileAttachment:
        """Read ``file`` from disk; its path is stored relative to ``relative_to`` if given."""
        file = Path(file)
        name = file.relative_to(relative_to) if relative_to is not None else file
        return cls(name.as_posix(), file.read_bytes())

    @property
    def size(self) -> int:
        """Size of the content in bytes."""
        return len(self.content)

    def save_to(self, directory: str | Path) -> Path:
        """Write the file under ``directory``, creating parent directories.

        Directories and the file are made world-writable because the sandboxed program runs as
        an unprivileged user that must be able to change and delete its input files.
        """
        directory = Path(directory)
        target = directory / posixpath.normpath(safe_path(self.path) or ".")
        _make_dirs(directory, target.parent)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            view = memoryview(self.content)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        finally:
            os.close(fd)
        return target

    @property
    def as_dict(self) -> dict[str, Any]:
        """The JSON response form ``{"path", "size", "content": base64}``.

        A property, as in the original, whose callers read ``file.as_dict``.
        """
        return {
            "path": self.path,
            "size": self.size,
            "content": b64encode(self.content).decode("ascii"),
        }


def _make_dirs(root: Path, directory: Path) -> None:
    """Create ``directory`` and its missing parents below ``root`` with ``DIR_MODE``.

    ``os.makedirs`` applies the umask, so each created directory is chmod-ed explicitly.
    """
    missing: list[Path] = []
    current = directory
    while current != root and not current.is_dir():
        if current.exists() or current.is_symlink():
            break  # let os.open report NotADirectoryError for a file in the way
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        os.mkdir(path, DIR_MODE)
        os.chmod(path, DIR_MODE)
