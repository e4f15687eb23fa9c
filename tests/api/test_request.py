"""Parsing an /eval body yields a fully checked request: nothing after it checks again."""

from __future__ import annotations

import falcon
import pytest

from snekbox.api.request import EvalRequest, RequestParser
from snekbox.limits.table import EvalLimits
from snekbox.services.engine_facts import EngineFacts
from snekbox.services.limit_policy import LimitPolicy
from snekbox.services.settings import LimitMaxima
from snekbox.snekio import FileAttachment
from tests.support.api import FakeRunner

ENGINE = EngineFacts.of(FakeRunner())
PARSER = RequestParser(
    LimitPolicy(ENGINE.defaults, LimitMaxima(time=10), ENGINE.footprint), "/snekbin/python"
)


def test_a_parsed_request_has_decoded_files_and_resolved_limits() -> None:
    request = PARSER.parse(
        {
            "args": ["main.py"],
            "files": [{"path": "main.py", "content": "MQ=="}],
            "executable_path": "/snekbin/python/default/bin/python",
            "limits": {"time": 2.0},
            "details": True,
        }
    )
    assert request == EvalRequest(
        args=["main.py"],
        files=[FileAttachment("main.py", b"1")],
        executable_path="/snekbin/python/default/bin/python",
        limits=EvalLimits(time=2),
        details=True,
    )
    assert type(request.limits.time) is int  # type: ignore[union-attr]


def test_only_what_the_request_set_reaches_the_engine() -> None:
    assert PARSER.parse({"input": "1"}).engine_options() == {}
    assert PARSER.parse({"input": "1", "limits": {"pids": 3}}).engine_options() == {
        "limits": EvalLimits(pids=3)
    }


def test_a_limit_above_the_maximum_is_refused_while_parsing() -> None:
    with pytest.raises(falcon.HTTPBadRequest) as error:
        PARSER.parse({"input": "1", "limits": {"time": 11}})
    assert error.value.description == (
        "limits.time is 11 seconds; this server allows at most 10 seconds."
    )
