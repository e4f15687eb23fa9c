"""Moving files between requests and a run's memfs, and the memfs itself."""

from snekbox.snekio.attachment import FileAttachment, safe_path
from snekbox.snekio.collect import Collection, SkippedFile
from snekbox.snekio.errors import FileParsingError, IllegalPathError, ParsingError
from snekbox.snekio.memfs import MemFS

__all__ = (
    "Collection",
    "FileAttachment",
    "FileParsingError",
    "IllegalPathError",
    "MemFS",
    "ParsingError",
    "SkippedFile",
    "safe_path",
)
