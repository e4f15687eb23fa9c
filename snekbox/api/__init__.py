"""The HTTP layer: parse and validate requests, run them through the engine, answer in JSON."""

from snekbox.api.app import create_app
from snekbox.api.snekapi import SnekAPI

__all__ = ["SnekAPI", "create_app"]
