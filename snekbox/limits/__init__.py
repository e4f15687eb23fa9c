"""Host-side limits: cgroup preparation, swap accounting and deadlines."""

from snekbox.limits import cgroup, swap, timed

__all__ = ("cgroup", "swap", "timed")
