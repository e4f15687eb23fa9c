"""The eval packages in user_base: one `pip install --user` per interpreter, then an import check.

A stamp in each user site records the requirements' hash and the interpreter's ABI, so nothing
is reinstalled until one of them changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

from snekbox_provision.interpreters import Interpreter, probe, python_executable
from snekbox_provision.paths import make_world_readable
from snekbox_provision.requirements import EvalRequirement
from snekbox_provision.tools import Tools, clean_env, run_pip
from snekbox_provision.verify import run_as_sandbox_user

log = logging.getLogger(__name__)

EVAL_STAMP = ".snekbox-eval-deps.json"  # In a user site: what was installed there.


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
    target = probe(python_executable(prefix), env=user_env(user_base), isolated=False)
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
    run_pip(command, env)
    _compile_user_site(target)
    target.usersite.mkdir(parents=True, exist_ok=True)
    stamp = eval_stamp(requirements_file.read_bytes(), target)
    (target.usersite / EVAL_STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
    make_world_readable(user_base)
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
    completed = run_as_sandbox_user(command, env=user_env(user_base))
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
