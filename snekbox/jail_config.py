"""Where the engine's NsJail binary and config are, and what the config says.

Provisioning, the cgroup set-up, the engine and the server's services all need these facts,
the engine's defaults among them; they live here, below all of them, so none has to import
the engine to learn them. The binary's locator and the default interpreter are host layout,
shared with provisioning through ``snekbox.layout``, and re-exported here.
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf import text_format

from snekbox.config_pb2 import NsJailConfig
from snekbox.layout import DEFAULT_EXECUTABLE_PATH, NsJailNotFoundError, locate_nsjail

__all__ = (
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_EXECUTABLE_PATH",
    "DEFAULT_MAX_OUTPUT_SIZE",
    "DEFAULT_MEMFS_INSTANCE_SIZE",
    "NsJailNotFoundError",
    "locate_nsjail",
    "read_config",
)

DEFAULT_CONFIG_PATH = "./config/snekbox.cfg"
DEFAULT_MAX_OUTPUT_SIZE = 1_000_000
"""Characters of output a run may produce before it is stopped (`NsJail`'s default)."""
DEFAULT_MEMFS_INSTANCE_SIZE = 48 * 1024 * 1024
"""Bytes of each run's writable home (`NsJail`'s default)."""


def read_config(path: str | Path) -> NsJailConfig:
    """Parse NsJail's protobuf text config so snekbox knows the limits it enforces."""
    config = NsJailConfig()
    text_format.Parse(Path(path).read_text(), config)
    return config
