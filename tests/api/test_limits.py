"""Per-request limits: validated by the schema, capped by the server's maxima, passed on as-is."""

from __future__ import annotations

import pytest
from falcon import testing

from snekbox.api import create_app
from snekbox.limits.table import EvalLimits
from snekbox.services.engine_facts import EngineFacts
from snekbox.services.limit_policy import LimitPolicy
from snekbox.services.settings import ApiSettings, LimitMaxima
from tests.support.api import FakeRunner

MiB = 1024**2


def test_no_limits_reach_the_engine_exactly_as_before(
    client: testing.TestClient, runner: FakeRunner
) -> None:
    response = client.simulate_post("/eval", json={"input": "1"})
    assert response.status_code == 200
    assert "limits" not in runner.calls[0]


def test_limits_reach_the_engine(client: testing.TestClient, runner: FakeRunner) -> None:
    limits = {"time": 10, "memory": 100 * MiB, "pids": 20, "output_size": 5000}
    response = client.simulate_post("/eval", json={"input": "1", "limits": limits})
    assert response.status_code == 200, response.json
    assert runner.calls[0]["limits"] == EvalLimits(**limits)


def test_limits_may_be_partial_and_lower(client: testing.TestClient, runner: FakeRunner) -> None:
    response = client.simulate_post("/eval", json={"input": "1", "limits": {"time": 1}})
    assert response.status_code == 200
    assert runner.calls[0]["limits"] == EvalLimits(time=1)


def test_integral_floats_become_integers(client: testing.TestClient, runner: FakeRunner) -> None:
    """JSON Schema counts 2.0 as an integer; NsJail must still get "2"."""
    client.simulate_post("/eval", json={"input": "1", "limits": {"time": 2.0}})
    limits = runner.calls[0]["limits"]
    assert limits.time == 2 and type(limits.time) is int


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"time": 0}, "0 is less than the minimum of 1"),
        ({"memory": -5}, "-5 is less than the minimum of 16777216"),
        ({"memory": 1}, "1 is less than the minimum of 16777216"),
        ({"memory": 16 * MiB - 1}, "16777215 is less than the minimum of 16777216"),
        ({"pids": 2.5}, "2.5 is not of type 'integer'"),
        ({"time": "10"}, "'10' is not of type 'integer'"),
        ({"time": True}, "True is not of type 'integer'"),
        ({"cpu": 1}, "Additional properties are not allowed ('cpu' was unexpected)"),
        (5, "5 is not of type 'object'"),
    ],
)
def test_bad_limits_are_schema_errors(
    client: testing.TestClient, runner: FakeRunner, limits: object, message: str
) -> None:
    response = client.simulate_post("/eval", json={"input": "1", "limits": limits})
    assert response.status_code == 400
    assert response.json == {"title": "Request data failed validation", "description": message}
    assert runner.calls == []


@pytest.mark.parametrize(
    ("name", "value", "description"),
    [
        ("time", 31, "limits.time is 31 seconds; this server allows at most 30 seconds."),
        (
            "memory",
            LimitMaxima().memory + 1,
            f"limits.memory is {LimitMaxima().memory + 1} bytes; this server allows at "
            f"most {LimitMaxima().memory} bytes.",
        ),
        ("pids", 65, "limits.pids is 65 processes; this server allows at most 64 processes."),
        (
            "output_size",
            10**40,
            f"limits.output_size is {10**40} characters; this server allows at most 10000000 "
            "characters.",
        ),
    ],
)
def test_limits_above_the_maximum_are_400(
    client: testing.TestClient, runner: FakeRunner, name: str, value: int, description: str
) -> None:
    response = client.simulate_post("/eval", json={"input": "1", "limits": {name: value}})
    assert response.status_code == 400
    assert response.json == {
        "title": "Request limit is above the server's maximum",
        "description": description,
    }
    assert runner.calls == []


def test_the_maximum_itself_is_allowed(runner: FakeRunner) -> None:
    settings = ApiSettings(4, 64 * 1024, 5, max_limits=LimitMaxima(time=7, pids=3))
    client = testing.TestClient(create_app(runner, settings))
    response = client.simulate_post("/eval", json={"input": "1", "limits": {"time": 7, "pids": 3}})
    assert response.status_code == 200
    response = client.simulate_post("/eval", json={"input": "1", "limits": {"time": 8}})
    assert response.status_code == 400
    assert "at most 7 seconds" in response.json["description"]


def test_maxima_come_from_the_environment() -> None:
    settings = ApiSettings.from_env(
        {
            "SNEKBOX_MAX_TIME_LIMIT": "12",
            "SNEKBOX_MAX_MEMORY_LIMIT": str(256 * MiB),
            "SNEKBOX_MAX_PIDS_LIMIT": "20",
            "SNEKBOX_MAX_OUTPUT_SIZE": "2000000",
            "SNEKBOX_QUEUE_TIMEOUT": "0.5",
        }
    )
    assert settings.max_limits == LimitMaxima(12, 256 * MiB, 20, 2_000_000)
    assert settings.queue_timeout == 0.5
    assert ApiSettings.from_env({}).max_limits == LimitMaxima(30, 512 * MiB, 64, 10_000_000)


@pytest.mark.parametrize(
    "name", ["SNEKBOX_MAX_TIME_LIMIT", "SNEKBOX_MAX_MEMORY_LIMIT", "SNEKBOX_QUEUE_TIMEOUT"]
)
def test_bad_maxima_stop_start_up_with_their_name(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        ApiSettings.from_env({name: "0"})


# The deployed engine: 70 MiB runs with a 48 MiB home and a 40 MiB /dev/shm.
ENGINE = EngineFacts.of(FakeRunner())


def policy() -> LimitPolicy:
    return LimitPolicy(ENGINE.defaults, LimitMaxima(), ENGINE.footprint)


@pytest.mark.parametrize(
    ("memory", "slots"),
    [
        (None, 1),
        (1, 1),
        (70 * MiB, 1),
        (70 * MiB + 1, 2),
        (228 * MiB, 2),  # 228 + 88 = 2 x (70 + 88)
        (228 * MiB + 1, 3),
        (512 * MiB, 4),
    ],
)
def test_more_memory_takes_more_slots(memory: int | None, slots: int) -> None:
    assert policy().slots_for(None if memory is None else EvalLimits(memory=memory)) == slots
    if memory:
        # Whatever the weight, the slots it takes cover the memory the run can pin.
        footprint = ENGINE.footprint
        assert slots * footprint.default_run >= footprint.with_memory(memory)


def test_limits_that_are_not_memory_take_one_slot() -> None:
    assert policy().slots_for(EvalLimits(time=30, pids=64, output_size=10_000_000)) == 1
