"""Which interpreters and eval packages this server offers, found once at start-up.

Each `/snekbin/python/<name>/bin/python` is run once on the host (outside the jail; the jail sees
the same files read-only) with a short script that reports its version and build flags and
where `pip install --user` put its packages under the sandbox's PYTHONUSERBASE. The packages'
names and versions are then read from their `*.dist-info/METADATA`. Nothing here runs per
request: `GET /info` serves what start-up found.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from snekbox import layout

__all__ = [
    "Interpreter",
    "Package",
    "discover_interpreters",
    "jail_environment",
    "read_packages",
]

log = logging.getLogger(__name__)

SNEKBIN_PYTHON = Path(layout.INTERPRETER_ROOT)
DEFAULT_NAME = layout.DEFAULT_INTERPRETER
USER_BASE = layout.USER_BASE
PROBE_TIMEOUT = 15.0

# Runs under the interpreter being described, with -S (no site: nothing of user_base is
# imported) and the jail's environment variables, so JIT defaults match what runs see.
# `sys._jit` exists from 3.14; 3.13's experimental JIT is only visible in its configure flags.
PROBE_SCRIPT = """\
import json, os, platform, re, sys, sysconfig
jit = getattr(sys, "_jit", None)
if jit is not None:
    jit_enabled = bool(jit.is_enabled())
else:
    flags = sysconfig.get_config_var("CONFIG_ARGS") or ""
    jit_enabled = bool(
        re.search(r"--enable-experimental-jit(?!=(no|yes-off|interpreter))", flags)
    )
print(json.dumps({
    "version": platform.python_version(),
    "sys_version": sys.version,
    "implementation": sys.implementation.name,
    "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    "jit": jit_enabled,
    "user_site": sysconfig.get_path(
        "purelib", f"{os.name}_user", vars={"userbase": sys.argv[1]}
    ),
}))
"""


@dataclass(frozen=True, slots=True)
class Package:
    """One distribution installed for sandboxed code."""

    name: str
    version: str


@dataclass(frozen=True, slots=True)
class Interpreter:
    """An interpreter a request may name as `executable_path`."""

    name: str
    """Its directory under /snekbin/python, e.g. "3.14t"."""
    executable_path: str
    default: bool
    """Whether /snekbin/python/default points at it (it runs when no path is given)."""
    version: str
    """`platform.python_version()`, e.g. "3.14.0"."""
    sys_version: str
    """`sys.version`: version, build date and compiler."""
    implementation: str
    free_threaded: bool
    """Built with --disable-gil (`Py_GIL_DISABLED`)."""
    jit: bool
    """The JIT compiler is on when a run starts."""
    packages: list[Package] = field(default_factory=list)
    """What sandboxed code can import beyond the standard library, sorted by name."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, as /info serves it."""
        return asdict(self)


def read_packages(site_packages: str | os.PathLike[str]) -> list[Package]:
    """Names and versions of the distributions in `site_packages`, from their METADATA."""
    found: dict[str, Package] = {}
    for dist in metadata.distributions(path=[str(site_packages)]):
        name = dist.metadata["Name"]
        if not name:
            continue
        # Normalised as PEP 503 does, so a stray second dist-info cannot list a name twice.
        key = name.lower().replace("_", "-").replace(".", "-")
        found.setdefault(key, Package(name, dist.version))
    return sorted(found.values(), key=lambda package: package.name.lower())


def _probe(executable: Path, env: Mapping[str, str], user_base: str) -> dict[str, Any]:
    """Run PROBE_SCRIPT with `executable` and return what it printed."""
    completed = subprocess.run(
        [str(executable), "-S", "-c", PROBE_SCRIPT, user_base],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _describe(
    name: str, executable: Path, default: bool, env: Mapping[str, str], user_base: str
) -> Interpreter | None:
    """Probe one interpreter; None (and a logged error) when it does not run."""
    try:
        facts = _probe(executable, env, user_base)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as error:
        detail = getattr(error, "stderr", "") or ""
        log.error("Interpreter %s does not run: %s %s", executable, error, detail.strip())
        return None
    user_site = facts.pop("user_site")
    return Interpreter(
        name=name,
        executable_path=str(executable),
        default=default,
        packages=read_packages(user_site),
        **facts,
    )


def discover_interpreters(
    root: str | os.PathLike[str] = SNEKBIN_PYTHON,
    *,
    env: Mapping[str, str] | None = None,
    user_base: str = USER_BASE,
) -> list[Interpreter]:
    """Describe every `<root>/<name>/bin/python`, sorted by name; `default` is an alias.

    `env` should be the jail's environment (the NsJail config's `envar` lines); the probes run
    in parallel so start-up waits for the slowest interpreter only.
    """
    root = Path(root)
    default_target = (root / DEFAULT_NAME).resolve()
    candidates: list[tuple[str, Path, bool]] = []
    for directory in sorted(root.iterdir() if root.is_dir() else ()):
        executable = directory / layout.INTERPRETER_EXECUTABLE
        if not executable.is_file() or not os.access(executable, os.X_OK):
            continue
        is_default = directory.resolve() == default_target
        if directory.name == DEFAULT_NAME and directory.is_symlink():
            continue  # listed under the name it points to
        candidates.append((directory.name, executable, is_default))
    environment = dict(env) if env is not None else {}
    with ThreadPoolExecutor(max(1, len(candidates))) as pool:
        described = pool.map(
            lambda item: _describe(item[0], item[1], item[2], environment, user_base),
            candidates,
        )
        interpreters = [interpreter for interpreter in described if interpreter is not None]
    log.info(
        "Interpreters: %s",
        ", ".join(
            f"{i.name} ({i.version}{', default' if i.default else ''}, {len(i.packages)} packages)"
            for i in interpreters
        )
        or "none",
    )
    return interpreters


def jail_environment(envars: Sequence[str]) -> dict[str, str]:
    """The NsJail config's `envar` lines ("NAME=value") as a mapping."""
    pairs = (line.partition("=") for line in envars)
    return {name: value for name, _, value in pairs if name}
