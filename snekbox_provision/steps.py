"""One provisioning run: the steps in order, each skipped (or, with --check, verified) when done."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from pathlib import Path

from snekbox import layout
from snekbox_provision import ProvisionError
from snekbox_provision.copies import LAYOUT_MARKER, build_copy, layout_state
from snekbox_provision.eval_deps import (
    EVAL_STAMP,
    eval_deps_state,
    install_eval_deps,
    verify_eval_imports,
    verify_user_base_readable,
)
from snekbox_provision.host import (
    check_memfs,
    check_nsjail,
    ensure_memfs,
    locate_nsjail,
    prepare_cgroups,
)
from snekbox_provision.interpreters import (
    AUTO_SOURCES,
    MIN_PYTHON,
    Interpreter,
    discover_sources,
    explicit_sources,
    has_python_binary,
    installed_interpreters,
    python_executable,
    python_root,
)
from snekbox_provision.links import check_default, default_target, ensure_python_link, set_default
from snekbox_provision.paths import make_root_dir
from snekbox_provision.requirements import parse_eval_requirements
from snekbox_provision.tools import Tools
from snekbox_provision.verify import verify_interpreter

log = logging.getLogger(__name__)

_MIN_VERSION = ".".join(map(str, MIN_PYTHON))


@dataclasses.dataclass
class Options:
    """What one run is asked to do: the parsed command line."""

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


def run(options: Options) -> list[str]:
    """Provision (or, with --check, verify); return the problems found."""
    problems: list[str] = []
    root = python_root(options.snekbin)
    if options.only_eval_deps is None:
        if not options.check:
            make_root_dir(options.snekbin)
            make_root_dir(root)
        sources = _sources(options)
        tools = Tools(options.cache_dir, [source.python for source in sources])
        problems += _step_interpreters(options, sources, tools)
        problems += _step_foreign_installs(options)
        if not installed_interpreters(options.snekbin):
            return [
                *problems,
                f"no interpreter under {root}: install a CPython >= {_MIN_VERSION} (e.g. "
                "with pyenv) and re-run provisioning, or pass --interpreters",
            ]
        target = default_target(options.snekbin, options.default)
        if options.check:
            problems += check_default(options.snekbin, target)
        else:
            set_default(options.snekbin, target)
        for prefix in installed_interpreters(options.snekbin):
            problems += verify_interpreter(prefix, options.snekbin)
    else:
        pythons = [python_executable(prefix) for prefix in installed_interpreters(options.snekbin)]
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
        _make_user_base(options.user_base)

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
        log.info("NsJail: not checked (no --venv-python and no %s)", layout.NSJAIL_PATH_ENV)
    else:
        nsjail_problems = check_nsjail(nsjail)
        problems += nsjail_problems
        if not nsjail_problems:
            log.info("NsJail ok: %s", nsjail)
    return problems


def _sources(options: Options) -> list[Interpreter]:
    """The interpreters to copy: found on the host, none, or those named."""
    if options.interpreters == ["auto"]:
        return discover_sources(AUTO_SOURCES, options.snekbin)
    if options.interpreters == ["none"]:
        return []
    return explicit_sources(options.interpreters)


def _step_interpreters(options: Options, sources: list[Interpreter], tools: Tools) -> list[str]:
    """Make or refresh each source's copy, after clearing what an interrupted run left."""
    problems = []
    if not options.check:
        for leftover in python_root(options.snekbin).glob(".*-*"):
            log.info("removing %s, left by an interrupted run", leftover)
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover)
            else:
                leftover.unlink()
    for source in sources:
        copy = python_root(options.snekbin) / source.key
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
    root = python_root(options.snekbin)
    for prefix in sorted(root.iterdir()) if root.is_dir() else ():
        if prefix.name.startswith(".") or prefix.is_symlink() or (prefix / LAYOUT_MARKER).exists():
            continue
        if os.path.lexists(python_executable(prefix)) or not has_python_binary(prefix):
            continue
        if options.check:
            problems.append(f"{python_executable(prefix)} is missing: run provisioning")
        else:
            ensure_python_link(prefix)
    return problems


def _step_eval_deps(options: Options, tools: Tools) -> list[str]:
    """Install (or check) each interpreter's eval deps, then prove they import as nobody."""
    if not options.eval_deps.is_file():
        return [f"eval deps file {options.eval_deps} does not exist"]
    requirements_bytes = options.eval_deps.read_bytes()
    requirements = parse_eval_requirements(requirements_bytes.decode())
    prefixes = installed_interpreters(options.snekbin)
    if options.only_eval_deps:
        by_name = {prefix.name: prefix for prefix in prefixes}
        missing = [name for name in options.only_eval_deps if name not in by_name]
        if missing:
            root = python_root(options.snekbin)
            return [f"no interpreter at {root / name}" for name in missing]
        prefixes = [by_name[name] for name in options.only_eval_deps]
    if not options.check:
        _make_user_base(options.user_base)
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


def _make_user_base(user_base: Path) -> None:
    """user_base and its parent, traversable by the sandbox user."""
    make_root_dir(user_base.parent)
    make_root_dir(user_base)
