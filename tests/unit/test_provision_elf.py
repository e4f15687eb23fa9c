"""The ELF reader on hand-built images: both classes, both byte orders, and what is no ELF.

Real binaries only show this host's class and byte order; these images show the reader takes
each field from where the ELF format puts it. patchelf's view: tests/provision.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

from snekbox_provision import ProvisionError
from snekbox_provision.elf import ElfDynamic, read_elf_dynamic

PT_LOAD, PT_DYNAMIC = 1, 2
DT_NULL, DT_NEEDED, DT_STRTAB, DT_RPATH, DT_RUNPATH = 0, 1, 5, 15, 29
VADDR = 0x400000


def elf_image(
    *,
    is64: bool,
    little: bool,
    needed: tuple[str, ...] = (),
    rpath: str | None = None,
    runpath: str | None = None,
    dynamic: bool = True,
    strtab_loaded: bool = True,
) -> bytes:
    """A minimal ELF file: one PT_LOAD over the whole file and, if `dynamic`, a PT_DYNAMIC."""
    order = "<" if little else ">"
    header_size, ph_size = (64, 56) if is64 else (52, 32)
    phnum = 2 if dynamic else 1
    strtab = bytearray(b"\0")

    def string(text: str) -> int:
        offset = len(strtab)
        strtab.extend(text.encode() + b"\0")
        return offset

    entries = [(DT_NEEDED, string(name)) for name in needed]
    if rpath is not None:
        entries.append((DT_RPATH, string(rpath)))
    if runpath is not None:
        entries.append((DT_RUNPATH, string(runpath)))
    strtab_offset = header_size + phnum * ph_size
    dynamic_offset = strtab_offset + len(strtab) + (-len(strtab) % 8)
    strtab_vaddr = VADDR + strtab_offset if strtab_loaded else VADDR + 0x100000
    entries += [(DT_STRTAB, strtab_vaddr), (DT_NULL, 0)]
    entry_format = order + ("qQ" if is64 else "iI")
    dynamic_bytes = b"".join(struct.pack(entry_format, tag, value) for tag, value in entries)
    size = dynamic_offset + len(dynamic_bytes)

    ident = b"\x7fELF" + bytes([2 if is64 else 1, 1 if little else 2, 1]) + bytes(9)
    if is64:
        header = ident + struct.pack(order + "HHIQQQIHHHHHH", 3, 62, 1, 0, header_size, 0, 0,
                                     header_size, ph_size, phnum, 0, 0, 0)  # fmt: skip
        segment = order + "IIQQQQQQ"  # type, flags, offset, vaddr, paddr, filesz, memsz, align

        def program_header(kind: int, offset: int, length: int) -> bytes:
            return struct.pack(segment, kind, 4, offset, VADDR + offset, 0, length, length, 8)
    else:
        header = ident + struct.pack(order + "HHIIIIIHHHHHH", 3, 3, 1, 0, header_size, 0, 0,
                                     header_size, ph_size, phnum, 0, 0, 0)  # fmt: skip
        segment = order + "IIIIIIII"  # type, offset, vaddr, paddr, filesz, memsz, flags, align

        def program_header(kind: int, offset: int, length: int) -> bytes:
            return struct.pack(segment, kind, offset, VADDR + offset, 0, length, length, 4, 4)

    image = bytearray(size)
    image[:header_size] = header
    image[header_size : header_size + ph_size] = program_header(PT_LOAD, 0, size)
    if dynamic:
        image[header_size + ph_size : strtab_offset] = program_header(
            PT_DYNAMIC, dynamic_offset, len(dynamic_bytes)
        )
    image[strtab_offset : strtab_offset + len(strtab)] = strtab
    image[dynamic_offset:] = dynamic_bytes
    return bytes(image)


@pytest.mark.parametrize("is64", [True, False], ids=["64-bit", "32-bit"])
@pytest.mark.parametrize("little", [True, False], ids=["little-endian", "big-endian"])
def test_reads_needed_rpath_and_runpath_in_every_class_and_byte_order(
    tmp_path: Path, is64: bool, little: bool
) -> None:
    path = tmp_path / "lib.so"
    path.write_bytes(
        elf_image(
            is64=is64,
            little=little,
            needed=("libpython3.13.so.1.0", "libc.so.6"),
            rpath="/old/lib",
            runpath="$ORIGIN/../lib::/opt/x",
        )
    )
    assert read_elf_dynamic(path) == ElfDynamic(
        needed=("libpython3.13.so.1.0", "libc.so.6"),
        rpath=("/old/lib",),
        runpath=("$ORIGIN/../lib", "/opt/x"),
    )


def test_search_path_is_rpath_then_runpath(tmp_path: Path) -> None:
    path = tmp_path / "lib.so"
    path.write_bytes(elf_image(is64=True, little=True, rpath="/a:/b", runpath="/c"))
    dynamic = read_elf_dynamic(path)
    assert dynamic is not None
    assert dynamic.search_path == ("/a", "/b", "/c")


def test_a_statically_linked_file_has_no_dynamic_entries(tmp_path: Path) -> None:
    path = tmp_path / "static"
    path.write_bytes(elf_image(is64=True, little=True, dynamic=False))
    assert read_elf_dynamic(path) is None


def test_files_that_are_not_elf_are_not_read_as_elf(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text("#!/usr/bin/env python3\n" + "print('not an ELF file')\n" * 4)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    short = tmp_path / "short"
    short.write_bytes(b"\x7fELF\x02\x01\x01")
    assert [read_elf_dynamic(path) for path in (script, empty, short)] == [None, None, None]


def test_a_string_table_outside_every_segment_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.so"
    path.write_bytes(elf_image(is64=True, little=True, needed=("libc.so.6",), strtab_loaded=False))
    with pytest.raises(ProvisionError, match="DT_STRTAB is outside every loaded segment"):
        read_elf_dynamic(path)


def test_reads_the_interpreter_running_the_tests() -> None:
    dynamic = read_elf_dynamic(Path(sys.executable).resolve())
    assert dynamic is not None
    assert any(name.startswith("libc.so") for name in dynamic.needed), dynamic
