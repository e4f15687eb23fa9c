"""Whether the memory cgroup can forbid swap.

Without swap accounting (cgroup v1 without ``memory.memsw.*``, cgroup v2 without
``memory.swap.max``) swap cannot be limited at all; if the host also has no swap space, nothing
is lost, otherwise an operator needs to know that the memory limit can be exceeded.
"""

from __future__ import annotations

import logging
from pathlib import Path

from snekbox.config_pb2 import NsJailConfig
from snekbox.limits.cgroup import CgroupSetup

__all__ = ("swap_in_use", "swap_limit_enforceable", "warn_if_unenforceable")

log = logging.getLogger(__name__)


def swap_limit_enforceable(setup: CgroupSetup) -> bool:
    """Whether the kernel accounts swap in the memory cgroup that NsJail will use."""
    if setup.version == 2:
        return Path(setup.memory_parent, "memory.swap.max").exists()
    return Path(setup.memory_parent, "memory.memsw.limit_in_bytes").exists()


def swap_in_use(proc_swaps: str | Path = "/proc/swaps") -> bool:
    """Whether the host has any active swap area (``/proc/swaps`` lists more than a header)."""
    try:
        lines = Path(proc_swaps).read_text().splitlines()
    except OSError:
        return False
    return len(lines) > 1


def warn_if_unenforceable(config: NsJailConfig, setup: CgroupSetup) -> bool:
    """Log once at start-up when the configured swap limit cannot be enforced.

    Returns whether the limit is enforceable. snekbox writes the swap limit into each run's
    cgroup itself and skips it where the kernel has no such file.
    """
    wants_limit = config.cgroup_mem_swap_max >= 0 or config.cgroup_mem_memsw_max > 0
    if not wants_limit or swap_limit_enforceable(setup):
        return True
    if swap_in_use():
        log.warning(
            "The kernel does not account swap in memory cgroups, so sandboxed programs may "
            "use swap beyond the memory limit. Boot with swapaccount=1 (cgroup v1) or "
            "enable the memory controller's swap accounting to enforce it."
        )
    else:
        log.info("Swap accounting is unavailable, but the host has no swap; nothing to limit.")
    return False
