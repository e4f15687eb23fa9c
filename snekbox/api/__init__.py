"""The HTTP layer: parse and validate requests, run them through the engine, answer in JSON."""

from snekbox.api.app import SnekAPI, create_app

__all__ = ["SnekAPI", "create_app"]
