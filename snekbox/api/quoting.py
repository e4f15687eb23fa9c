"""Quote a client's value in an error message without building a huge string."""

from __future__ import annotations

__all__ = ["REPR_DEPTH", "REPR_LIMIT", "bounded_repr"]

# How much of a rejected value an error message quotes.
REPR_LIMIT = 200
REPR_DEPTH = 8


def bounded_repr(value: object, limit: int = REPR_LIMIT, depth: int = 0) -> str:
    """`repr(value)` for small values; a cut-off version for large or deep ones.

    jsonschema quotes the whole offending instance in its messages, and the instance can be a
    gigabyte of files: building that string would cost more memory than the request itself.
    For values that fit the limit the text is identical to `repr`, so the messages clients
    know ("400 is not of type 'array'") are unchanged.
    """
    if isinstance(value, str):
        return repr(value) if len(value) <= limit else repr(value[:limit]) + "..."
    if isinstance(value, list | dict):
        opening, closing = "[]" if isinstance(value, list) else "{}"
        if depth >= REPR_DEPTH:
            return f"{opening}...{closing}"
        items = value.items() if isinstance(value, dict) else value
        parts: list[str] = []
        used = 2
        for item in items:
            if used >= limit:
                parts.append("...")
                break
            if isinstance(value, dict):
                key, element = item
                text = bounded_repr(key, limit - used, depth + 1) + ": "
                text += bounded_repr(element, max(limit - used - len(text), 0), depth + 1)
            else:
                text = bounded_repr(item, limit - used, depth + 1)
            parts.append(text)
            used += len(text) + 2
        return opening + ", ".join(parts) + closing
    # JSON leaves it: numbers (at most 4300 digits), booleans, None.
    return repr(value)
