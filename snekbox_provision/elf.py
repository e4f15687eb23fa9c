"""ELF files as the dynamic loader sees them: where a copied interpreter finds its libraries.

A dynamic-section reader, enough to see NEEDED and RUNPATH without binutils, and the rules for
moving a runpath from an interpreter's source into its copy.
"""

from __future__ import annotations

import dataclasses
import logging
import mmap
import os
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

from snekbox_provision import ProvisionError
from snekbox_provision.paths import is_within

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ElfDynamic:
    """The dynamic-section entries that decide where an ELF file finds its libraries."""

    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]

    @property
    def search_path(self) -> tuple[str, ...]:
        """Both RPATH and RUNPATH entries: either one leaks a host path into the jail."""
        return self.rpath + self.runpath


_PT_LOAD, _PT_DYNAMIC = 1, 2
_DT_NULL, _DT_NEEDED, _DT_STRTAB, _DT_RPATH, _DT_RUNPATH = 0, 1, 5, 15, 29


def read_elf_dynamic(path: str | os.PathLike[str]) -> ElfDynamic | None:
    """Return the dynamic entries of an ELF file, or None if it is not a dynamic ELF file."""
    with open(path, "rb") as file:
        if os.fstat(file.fileno()).st_size < 64:
            return None
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _parse_elf_dynamic(data, str(path))


def _parse_elf_dynamic(data: mmap.mmap, name: str) -> ElfDynamic | None:
    if data[:4] != b"\x7fELF" or data[4] not in (1, 2) or data[5] not in (1, 2):
        return None
    is64 = data[4] == 2
    order = "<" if data[5] == 1 else ">"
    if is64:
        phoff, phentsize, phnum = (
            struct.unpack_from(order + "Q", data, 0x20)[0],
            *struct.unpack_from(order + "HH", data, 0x36),
        )
        phdr, dyn = order + "IIQQQQQQ", order + "qQ"
    else:
        phoff, phentsize, phnum = (
            struct.unpack_from(order + "I", data, 0x1C)[0],
            *struct.unpack_from(order + "HH", data, 0x2A),
        )
        phdr, dyn = order + "IIIIIIII", order + "iI"

    loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz)
    dynamic: tuple[int, int] | None = None  # (offset, filesz)
    for index in range(phnum):
        fields = struct.unpack_from(phdr, data, phoff + index * phentsize)
        if is64:
            p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = fields[:6]
        else:
            p_type, p_offset, p_vaddr, _paddr, p_filesz = fields[:5]
        if p_type == _PT_LOAD:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == _PT_DYNAMIC:
            dynamic = (p_offset, p_filesz)
    if dynamic is None:
        return None  # Statically linked: nothing to look up at run time.

    entries: list[tuple[int, int]] = []
    entry_size = struct.calcsize(dyn)
    for offset in range(dynamic[0], dynamic[0] + dynamic[1], entry_size):
        tag, value = struct.unpack_from(dyn, data, offset)
        if tag == _DT_NULL:
            break
        entries.append((tag, value))
    strtab_vaddr = next((value for tag, value in entries if tag == _DT_STRTAB), None)
    if strtab_vaddr is None:
        return None
    strtab = next(
        (off + strtab_vaddr - va for va, off, size in loads if va <= strtab_vaddr < va + size),
        None,
    )
    if strtab is None:
        raise ProvisionError(f"{name}: DT_STRTAB is outside every loaded segment")

    def string(index: int) -> str:
        end = data.find(b"\0", strtab + index)
        return data[strtab + index : end].decode("utf-8", "surrogateescape")

    def strings(wanted: int) -> tuple[str, ...]:
        return tuple(string(value) for tag, value in entries if tag == wanted)

    def split(paths: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(part for joined in paths for part in joined.split(":") if part)

    return ElfDynamic(
        needed=strings(_DT_NEEDED),
        rpath=split(strings(_DT_RPATH)),
        runpath=split(strings(_DT_RUNPATH)),
    )


def expand_origin(entry: str, file: Path) -> str:
    """Resolve `$ORIGIN` in a runpath entry the way the dynamic loader does."""
    origin = str(file.parent)
    expanded = entry.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)
    return os.path.normpath(expanded)


def relocated_runpath(
    entries: Sequence[str], file: Path, source_prefix: Path, copy_prefix: Path
) -> list[str]:
    """Rewrite a copied file's runpath so it points into the copy instead of the source.

    Entries under the source prefix become `$ORIGIN`-relative paths to the same place in the
    copy (the copy moves with its tree); other absolute entries are dropped, since the jail
    only shows the copy and the system library directories that the loader searches anyway.
    """
    result: list[str] = []
    for entry in entries:
        if entry.startswith(("$ORIGIN", "${ORIGIN}")):
            new = entry
        elif is_within(Path(os.path.normpath(entry)), source_prefix):
            inside = Path(os.path.normpath(entry)).relative_to(source_prefix)
            target = copy_prefix / inside
            new = "$ORIGIN" + _relative_suffix(target, file.parent)
        else:
            log.warning("dropping runpath entry %s of %s: it is outside the copy", entry, file)
            continue
        if new not in result:
            result.append(new)
    return result


def _relative_suffix(target: Path, start: Path) -> str:
    relative = os.path.relpath(target, start)
    return "" if relative == "." else "/" + relative


def elf_files(prefix: Path) -> Iterator[Path]:
    """Files of an interpreter tree that the dynamic loader reads: binary, libraries, modules."""
    for pattern in ("bin/python*", "lib/*.so*", "lib/python*/lib-dynload/*.so"):
        for path in sorted(prefix.glob(pattern)):
            if path.is_file() and not path.is_symlink():
                yield path


def is_executable_path(path: Path, prefix: Path) -> bool:
    """Whether `path` is one of the tree's executables (bin/), not a library or module."""
    return path.parent == prefix / "bin"
