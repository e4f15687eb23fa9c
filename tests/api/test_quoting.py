"""Error messages quote a client's value briefly, however large or deep it is."""

from __future__ import annotations

import pytest

from snekbox.api.quoting import REPR_LIMIT, bounded_repr


@pytest.mark.parametrize(
    "value",
    [400, "x", {"stuff": "foo"}, [1, "a", None, True, 2.5], {"a": [{"b": "c"}]}, [], {}],
)
def test_bounded_repr_is_repr_for_small_values(value: object) -> None:
    assert bounded_repr(value) == repr(value)


@pytest.mark.parametrize(
    "value",
    ["x" * 10_000, ["y" * 100] * 1000, {str(i): i for i in range(10_000)}],
)
def test_bounded_repr_cuts_large_values(value: object) -> None:
    text = bounded_repr(value)
    assert len(text) < 2 * REPR_LIMIT + 50
    assert "..." in text


def test_bounded_repr_cuts_deep_values() -> None:
    value: list[object] = []
    for _ in range(5000):
        value = [value]
    assert bounded_repr(value).count("[") < 20
