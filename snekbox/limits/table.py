"""The per-run limits, each described once, and the one place defaults meet overrides.

A limit's name (the request's key and the `EvalLimits` field), unit, NsJail config field,
NsJail command-line options, floor, and the setting that caps what a request may ask for are
written here and nowhere else: the request schema, the maxima settings, the error messages,
/info and the engine all read them from `LIMITS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from snekbox.config_pb2 import NsJailConfig

__all__ = ("LIMITS", "EvalLimits", "Limit", "config_defaults", "merge", "parse_nsjail_options")

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limit:
    """One per-run limit and everything that names it."""

    name: str
    """The request's `limits` key and the `EvalLimits` field."""
    unit: str
    """How its value is counted, for messages and documents."""
    config_field: str | None
    """The NsJail config field holding its default; None for the engine's own output cap."""
    nsjail_options: tuple[str, ...]
    """NsJail command-line options that override the config's value (the CLI passes them)."""
    floor: int
    """The smallest value a request may set: below it a trivial run cannot start."""
    maximum_env: str
    """The setting that caps what a request may ask for."""
    default_maximum: int
    """That cap when the setting is unset."""


LIMITS: tuple[Limit, ...] = (
    Limit("time", "seconds", "time_limit", ("--time_limit", "-t"), 1,
          "SNEKBOX_MAX_TIME_LIMIT", 30),
    # Every provisioned interpreter starts in 16 MiB with room to spare (a trivial run peaks
    # at 3-6 MiB); below it a run dies before its first line.
    Limit("memory", "bytes", "cgroup_mem_max", ("--cgroup_mem_max",), 16 * MiB,
          "SNEKBOX_MAX_MEMORY_LIMIT", 512 * MiB),
    Limit("pids", "processes", "cgroup_pids_max", ("--cgroup_pids_max",), 1,
          "SNEKBOX_MAX_PIDS_LIMIT", 64),
    Limit("output_size", "characters", None, (), 1, "SNEKBOX_MAX_OUTPUT_SIZE", 10_000_000),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class EvalLimits:
    """Per-run limits; ``None`` keeps the value from further down (see ``merge``)."""

    time: int | None = None
    memory: int | None = None
    pids: int | None = None
    output_size: int | None = None


assert [limit.name for limit in LIMITS] == [field.name for field in fields(EvalLimits)]


def config_defaults(config: NsJailConfig, max_output_size: int) -> EvalLimits:
    """The limits a run gets from its NsJail config and the engine's output cap."""
    values = {
        limit.name: getattr(config, limit.config_field) if limit.config_field else max_output_size
        for limit in LIMITS
    }
    return EvalLimits(**values)


def merge(defaults: EvalLimits, *overrides: EvalLimits | None) -> EvalLimits:
    """`defaults` with each later override's set values on top: the one merge point."""
    merged = defaults
    for override in overrides:
        if override is not None:
            merged = replace(
                merged,
                **{
                    limit.name: getattr(override, limit.name)
                    for limit in LIMITS
                    if getattr(override, limit.name) is not None
                },
            )
    return merged


SWAP_OPTION = "--cgroup_mem_swap_max"
"""Swap is no request limit, but the engine applies it at its own cgroup like memory."""


def parse_nsjail_options(args: list[str]) -> tuple[EvalLimits, int | None, list[str]]:
    """Take the limit and swap options out of NsJail arguments (last one wins).

    Returns the limits they set, the swap limit they set, and the other arguments.
    ``--time_limit 2``, ``--time_limit=2`` and ``-t 2`` are understood; the engine applies
    these limits itself (its own clock, its own cgroup), so NsJail never sees them.
    """
    by_option: Mapping[str, str] = {
        SWAP_OPTION: "swap",
        **{option: limit.name for limit in LIMITS for option in limit.nsjail_options},
    }
    found: dict[str, int] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        name, _, inline = args[i].partition("=")
        if name in by_option:
            value = inline if inline else (args[i + 1] if i + 1 < len(args) else "")
            if value.lstrip("-").isdigit():
                found[by_option[name]] = int(value)
                i += 1 if inline else 2
                continue
        rest.append(args[i])
        i += 1
    swap = found.pop("swap", None)
    return EvalLimits(**found), swap, rest
