"""What the server needs to know of its engine: its config, output cap and memfs size.

The production engine is an `NsJail`; tests replace it (`mock.patch("snekbox.api.snekapi.
NsJail")`, as the original's own tests do, or a fake runner), and a stand-in may lack the real
one's attributes. Each fact then comes from where the real engine would have taken it: the
config file it was asked to use, and the engine's own defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from snekbox.config_pb2 import NsJailConfig
from snekbox.jail_config import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_MAX_OUTPUT_SIZE,
    DEFAULT_MEMFS_INSTANCE_SIZE,
    read_config,
)
from snekbox.limits.table import EvalLimits, config_defaults
from snekbox.services.footprint import RunFootprint

__all__ = ["EngineFacts"]


@dataclass(frozen=True, slots=True)
class EngineFacts:
    """The engine's configuration as the HTTP layer and its services read it."""

    config: NsJailConfig
    max_output_size: int
    memfs_instance_size: int

    @classmethod
    def of(cls, engine: object, config_path: str = DEFAULT_CONFIG_PATH) -> EngineFacts:
        """Read the facts from `engine`, or for a stand-in from `config_path` and defaults."""
        config = getattr(engine, "config", None)
        if not isinstance(config, NsJailConfig):
            config = read_config(config_path) if Path(config_path).is_file() else NsJailConfig()
        max_output = getattr(engine, "max_output_size", None)
        memfs_size = getattr(engine, "memfs_instance_size", None)
        return cls(
            config,
            max_output if isinstance(max_output, int) else DEFAULT_MAX_OUTPUT_SIZE,
            memfs_size if isinstance(memfs_size, int) else DEFAULT_MEMFS_INSTANCE_SIZE,
        )

    @property
    def defaults(self) -> EvalLimits:
        """The limits a run gets when its request sets none."""
        return config_defaults(self.config, self.max_output_size)

    @property
    def footprint(self) -> RunFootprint:
        """The host memory one default run can pin."""
        return RunFootprint.of(self.config, self.memfs_instance_size)
