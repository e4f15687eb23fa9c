"""A body's memory grows with what arrived, and all bodies of a process share one budget."""

from __future__ import annotations

import io
import json

import falcon
import pytest
from falcon import testing

from snekbox.api.body import BodyMemoryBudget, read_json_body

MiB = 1024**2


def request(body: bytes, content_length: int | None = None) -> falcon.Request:
    headers = {"Content-Type": "application/json"}
    if content_length is not None:
        headers["Content-Length"] = str(content_length)
    env = testing.create_environ(method="POST", path="/eval", headers=headers)
    env["wsgi.input"] = io.BytesIO(body)
    if content_length is None:
        env.pop("CONTENT_LENGTH", None)
    return falcon.Request(env)


def test_a_body_reserves_only_what_it_reads_and_gives_it_back() -> None:
    budget = BodyMemoryBudget(10 * MiB)
    body = json.dumps({"input": "x" * (3 * MiB)}).encode()
    assert read_json_body(request(body, len(body)), max_size=20 * MiB, timeout=1, budget=budget)
    assert budget.held == 0


def test_an_announced_body_that_never_comes_costs_one_chunk() -> None:
    """A gigabyte announced, two bytes sent: 400, and the budget is barely touched meanwhile."""
    budget = BodyMemoryBudget(2 * MiB)  # far below the announced size, enough for one chunk
    with pytest.raises(falcon.HTTPBadRequest) as error:
        read_json_body(request(b"{}", 10**9), max_size=2 * 10**9, timeout=1, budget=budget)
    assert error.value.title == "Request body is incomplete"
    assert budget.held == 0


def test_a_body_past_the_budget_is_503_naming_it() -> None:
    budget = BodyMemoryBudget(4 * MiB)
    assert budget.take(3 * MiB)  # another request's body, still arriving
    body = b" " * (2 * MiB) + b"{}"
    with pytest.raises(falcon.HTTPServiceUnavailable) as error:
        read_json_body(request(body, len(body)), max_size=10 * MiB, timeout=2, budget=budget)
    assert str(4 * MiB) in error.value.description
    assert error.value.headers["Retry-After"] == "2"
    assert budget.held == 3 * MiB  # the refused body gave back what it had


def test_a_chunked_body_counts_too() -> None:
    budget = BodyMemoryBudget(1)
    with pytest.raises(falcon.HTTPServiceUnavailable):
        read_json_body(request(b"{}"), max_size=10, timeout=1, budget=budget)
    assert budget.held == 0


def test_the_budget_variable_must_be_a_positive_int() -> None:
    assert BodyMemoryBudget.from_env({"SNEKBOX_MAX_BODY_MEMORY": "5"}).limit == 5
    with pytest.raises(ValueError, match="SNEKBOX_MAX_BODY_MEMORY"):
        BodyMemoryBudget.from_env({"SNEKBOX_MAX_BODY_MEMORY": "-1"})
