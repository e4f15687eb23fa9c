"""The HTTP resources snekbox serves."""

from snekbox.api.resources.eval import EvalResource

__all__ = ["EvalResource"]
