"""Run untrusted Python code under NsJail, behind an HTTP API.

The public names are resolved lazily (PEP 562) so that `import snekbox.nsjail` in the CLI or a
test does not pay for Falcon, jsonschema and the package-metadata scan it never uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from snekbox.utils.logging import debug_enabled

if TYPE_CHECKING:
    from snekbox.api import SnekAPI
    from snekbox.nsjail import NsJail

__all__ = ["DEBUG", "NsJail", "SnekAPI", "__version__"]

DEBUG = debug_enabled()
"""Whether ``SNEKBOX_DEBUG`` asked for debug logging (read once, at import)."""


def _read_version() -> str:
    """Return the installed distribution's version; a source checkout has none to report."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("snekbox")
    except PackageNotFoundError:
        return "0.0.0+unknown"


def __getattr__(name: str) -> Any:
    """Import a public name on first use and cache it in the module namespace."""
    value: Any
    if name == "NsJail":
        from snekbox import nsjail

        value = nsjail.NsJail
    elif name == "SnekAPI":
        from snekbox import api

        value = api.SnekAPI
    elif name == "__version__":
        value = _read_version()
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value
