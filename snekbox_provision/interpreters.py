"""The host's CPythons: finding them, asking them about themselves, and the installed ones."""

from __future__ import annotations

import dataclasses
import glob
import json
import logging
import os
import re
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from snekbox import layout
from snekbox_provision import ProvisionError
from snekbox_provision.paths import is_within

log = logging.getLogger(__name__)

MIN_PYTHON = (3, 10)  # Oldest interpreter offered to sandboxed code; eval-deps pins match it.
AUTO_SOURCES = (
    "/root/.pyenv/versions/*/bin/python3",
    "/usr/bin/python3.*",
    "/usr/local/bin/python3.*",
)


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
            if is_within(interpreter.executable, snekbin):
                continue  # Already where it belongs (e.g. an image's --prefix build).
            current = best.get(interpreter.key)
            if current is None or interpreter.version_info > current.version_info:
                best[interpreter.key] = interpreter
    return [best[key] for key in sorted(best, key=version_sort_key)]


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


def version_sort_key(name: str) -> tuple[int, ...]:
    """Order interpreter names and versions by their numbers: 3.9 < 3.10 < 3.10t."""
    return tuple(int(part) for part in re.findall(r"\d+", name))


def python_root(snekbin: Path) -> Path:
    """SNEKBIN/python: one directory per interpreter a request may name."""
    return snekbin / layout.INTERPRETERS_DIR


def python_executable(prefix: Path) -> Path:
    """What the jail runs in an interpreter's directory: bin/python."""
    return prefix / layout.INTERPRETER_EXECUTABLE


def installed_interpreters(snekbin: Path) -> list[Path]:
    """Every /snekbin/python/<name> directory that holds a runnable bin/python."""
    root = python_root(snekbin)
    if not root.is_dir():
        return []
    found = [
        entry
        for entry in root.iterdir()
        if not entry.name.startswith(".")
        and not entry.is_symlink()
        and os.access(python_executable(entry), os.X_OK)
    ]
    return sorted(found, key=lambda entry: version_sort_key(entry.name))


_PYTHON_NAME = re.compile(r"python3(\.\d+t?)?")  # python3, python3.14, python3.14t; no -config


def python_binaries(prefix: Path) -> list[str]:
    """The python3 executables an install has in bin/, whoever made it."""
    return sorted(
        path.name
        for path in prefix.glob("bin/python3*")
        if _PYTHON_NAME.fullmatch(path.name) and os.access(path, os.X_OK)
    )


def has_python_binary(prefix: Path) -> bool:
    """Whether `prefix` looks like a Python install (a foreign one, if it has no marker)."""
    return bool(python_binaries(prefix))
