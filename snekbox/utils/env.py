"""Reading numeric settings from environment variables, with errors that name the variable."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["positive_number"]


def positive_number(
    env: Mapping[str, str], name: str, kind: type[int] | type[float]
) -> float | None:
    """Parse a positive number from `env[name]`; None when unset.

    A bad value raises `ValueError` naming the variable, so a misconfigured server stops at
    start-up with a message that says what to fix.
    """
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be a positive {kind.__name__}, not {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be a positive {kind.__name__}, not {raw!r}")
    return value
