"""Verification of an interpreter under /snekbin, as the sandbox user with an empty environment."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path

from snekbox import layout
from snekbox_provision.elf import elf_files, expand_origin, is_executable_path, read_elf_dynamic
from snekbox_provision.interpreters import python_executable
from snekbox_provision.paths import is_within

log = logging.getLogger(__name__)

# Mapped files of a relocated interpreter may come only from its copy or the system libraries.
SYSTEM_LIB_DIRS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/libx32")

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
    python = python_executable(prefix)
    real_prefix = Path(os.path.realpath(prefix))
    completed = run_as_sandbox_user([str(python), "-c", _VERIFY], env={})
    if completed.returncode != 0:
        return [
            f"{python} does not run as uid {layout.SANDBOX_UID} with an empty environment "
            f"(exit {completed.returncode}): {completed.stderr.strip()[-1500:]}"
        ]
    facts = json.loads(completed.stdout)
    if Path(facts["prefix"]) != prefix and Path(facts["prefix"]) != real_prefix:
        problems.append(f"{python}: sys.prefix is {facts['prefix']}, expected {prefix}")
    for entry in facts["path"]:
        if entry and not (is_within(Path(entry), prefix) or is_within(Path(entry), real_prefix)):
            problems.append(f"{python}: sys.path has {entry}, outside {prefix}")
    for mapped in facts["maps"]:
        if mapped.startswith(("/dev/", "/memfd:")) or mapped.endswith(" (deleted)"):
            continue
        mapped_path = Path(mapped)
        allowed = [real_prefix, *map(Path, SYSTEM_LIB_DIRS)]
        if not any(is_within(mapped_path, root) for root in allowed):
            problems.append(f"{python}: loads {mapped}, which the jail does not show")
    problems.extend(verify_runpaths(prefix, snekbin))
    bare = run_as_sandbox_user(["python", "-c", _VERIFY_BARE], env={}, executable=str(python))
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
    for path in elf_files(prefix):
        dynamic = read_elf_dynamic(path)
        for entry in dynamic.search_path if dynamic else ():
            if is_executable_path(path, prefix) and "ORIGIN" in entry:
                problems.append(
                    f"{path} searches libraries in {entry}: the loader expands $ORIGIN of an "
                    "executable through /proc, which the jail does not mount"
                )
                continue
            resolved = Path(os.path.realpath(expand_origin(entry, Path(os.path.realpath(path)))))
            if not is_within(resolved, real_snekbin):
                problems.append(f"{path} searches libraries in {entry}, outside {snekbin}")
    return problems


def run_as_sandbox_user(
    command: list[str], env: dict[str, str], timeout: float = 120, executable: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command as the jail's user, with no supplementary groups, from /."""
    return subprocess.run(
        command,
        executable=executable,
        env=env,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=timeout,
        user=layout.SANDBOX_UID,
        group=layout.SANDBOX_GID,
        extra_groups=[],
    )
