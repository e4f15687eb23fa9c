"""HTTP behaviour around /eval: routes, methods, Accept headers and unexpected failures."""

from __future__ import annotations

import logging

import pytest
from falcon import testing

from tests.support.api import FakeRunner


def assert_json_error(response: testing.Result, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert set(response.json) == {"title", "description"}
    return response.json


def test_unknown_route_is_404(client: testing.TestClient) -> None:
    error = assert_json_error(client.simulate_get("/nope"), 404)
    assert error["title"] == "404 Not Found"
    assert "/nope" in error["description"]


def test_trailing_slash_is_another_route(client: testing.TestClient) -> None:
    assert_json_error(client.simulate_post("/eval/", json={"input": ""}), 404)


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "HEAD"])
def test_other_methods_on_eval_are_405(client: testing.TestClient, method: str) -> None:
    response = client.simulate_request(method, "/eval")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"].split(", ")
    if method != "HEAD":
        error = assert_json_error(response, 405)
        assert method in error["description"] and "POST" in error["description"]


@pytest.mark.parametrize(
    "accept", ["application/xml", "text/html", "text/plain", "image/png", "*/*", ""]
)
def test_errors_are_json_whatever_the_client_accepts(
    client: testing.TestClient, accept: str
) -> None:
    response = client.simulate_post("/eval", json={"stuff": 1}, headers={"Accept": accept})
    assert_json_error(response, 400)
    assert_json_error(client.simulate_get("/missing", headers={"Accept": accept}), 404)


def test_results_are_json_whatever_the_client_accepts(client: testing.TestClient) -> None:
    response = client.simulate_post(
        "/eval", json={"input": ""}, headers={"Accept": "application/xml"}
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"


def test_engine_crash_is_a_logged_500_without_traceback(
    client: testing.TestClient, runner: FakeRunner, caplog: pytest.LogCaptureFixture
) -> None:
    runner.error = RuntimeError("secret internal detail")
    with caplog.at_level(logging.ERROR, logger="snekbox"):
        response = client.simulate_post("/eval", json={"input": ""})
    error = assert_json_error(response, 500)
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    assert error["title"] == "500 Internal Server Error"
    record = next(r for r in caplog.records if r.name == "snekbox.api.app")
    assert record.exc_info is not None and "secret internal detail" in str(record.exc_info[1])
