"""The OpenAPI document: valid OpenAPI 3.1, and true to the implementation it describes."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from falcon import inspect, testing
from openapi_spec_validator import validate

from snekbox.api import create_app
from snekbox.api.request import EVAL_SCHEMA
from snekbox.api.resources.openapi import openapi_bytes
from snekbox.result import EvalResult
from snekbox.snekio import FileAttachment
from snekbox.snekio.collect import SkippedFile
from tests.support.api import FakeRunner
from tests.support.openapi_doc import DOCUMENT, check_response, validator_for

# Keywords that describe without constraining: the document may add them for readers.
ANNOTATIONS = {"description", "title", "examples", "example", "contentEncoding", "$comment"}


def without_annotations(schema: Any) -> Any:
    """`schema` with its annotation keywords removed (field names under `properties` stay)."""
    if isinstance(schema, list):
        return [without_annotations(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    stripped = {}
    for key, value in schema.items():
        if key in ANNOTATIONS:
            continue
        if key == "properties":
            stripped[key] = {name: without_annotations(sub) for name, sub in value.items()}
        else:
            stripped[key] = without_annotations(value)
    return stripped


def test_the_document_is_valid_openapi_3_1() -> None:
    assert DOCUMENT["openapi"].startswith("3.1.")
    validate(DOCUMENT)


def test_the_request_schema_is_the_one_the_api_validates_with() -> None:
    documented = without_annotations(DOCUMENT["components"]["schemas"]["EvalRequest"])
    implemented = {key: value for key, value in EVAL_SCHEMA.items() if key != "$schema"}
    assert documented == implemented
    assert DOCUMENT["jsonSchemaDialect"] == EVAL_SCHEMA["$schema"]


def documented_operations() -> set[tuple[str, str]]:
    return {
        (path, method.upper())
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete", "head", "options"}
    }


def test_every_route_is_documented_and_every_documented_route_exists(
    client: testing.TestClient,
) -> None:
    routes = inspect.inspect_routes(client.app)
    implemented = {
        (route.path, method.method)
        for route in routes
        for method in route.methods
        if not method.internal and method.method != "OPTIONS"
    }
    assert implemented == documented_operations()


def test_the_document_is_served_as_stored(client: testing.TestClient) -> None:
    response = client.simulate_get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.content == openapi_bytes()


def test_the_api_version_in_info_is_the_documents(client: testing.TestClient) -> None:
    assert client.simulate_get("/info").json["api_version"] == DOCUMENT["info"]["version"]


def test_request_examples_are_valid_requests(client: testing.TestClient) -> None:
    body = DOCUMENT["paths"]["/eval"]["post"]["requestBody"]["content"]["application/json"]
    assert body["examples"]
    for example in body["examples"].values():
        assert not list(
            validator_for("#/components/schemas/EvalRequest").iter_errors(example["value"])
        )
        response = client.simulate_post("/eval", json=example["value"])
        # The example interpreter may not exist on this host; anything else must be a 200.
        assert response.status_code == 200 or "executable_path" in response.json["title"]


def test_the_response_examples_match_their_schema() -> None:
    content = DOCUMENT["paths"]["/eval"]["post"]["responses"]["200"]["content"]
    examples = content["application/json"]["examples"]
    assert set(examples) == {"default", "details"}
    for example in examples.values():
        errors = validator_for("#/components/schemas/EvalResponse").iter_errors(example["value"])
        assert not list(errors)


def test_response_fields_are_exactly_the_documented_ones(
    client: testing.TestClient, runner: FakeRunner
) -> None:
    runner.result = EvalResult(
        [],
        0,
        "hi\n",
        files=[FileAttachment("a.txt", b"abc")],
        cpu_time=0.01,
        memory_peak=123,
        files_skipped=[SkippedFile(".hidden", "hidden")],
    )
    schema = DOCUMENT["components"]["schemas"]["EvalResponse"]
    plain = client.simulate_post("/eval", json={"input": "1"})
    assert list(plain.json) == schema["required"] == ["stdout", "returncode", "files"]
    detailed = client.simulate_post("/eval", json={"input": "1", "details": True})
    assert set(detailed.json) == set(schema["properties"])
    for response in (plain, detailed):
        check_response("/eval", "POST", 200, response.headers["Content-Type"], response.content)
        assert response.json["files"][0]["content"] == base64.b64encode(b"abc").decode()


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/eval", {"json": {"args": 400}}),
        ("POST", "/eval", {"json": {"input": "1", "limits": {"time": 999}}}),
        ("POST", "/eval", {"body": "{nope", "headers": {"Content-Type": "application/json"}}),
        ("POST", "/eval", {"body": "x", "headers": {"Content-Type": "text/plain"}}),
        ("POST", "/eval", {"json": {"input": "1", "files": [{"path": "a", "content": "!"}]}}),
        ("GET", "/eval", {}),
        ("GET", "/info", {}),
        ("GET", "/health", {}),
        ("GET", "/metrics", {}),
        ("GET", "/openapi.json", {}),
    ],
)
def test_answers_match_the_document(
    client: testing.TestClient, method: str, path: str, kwargs: dict
) -> None:
    response = client.simulate_request(method, path, **kwargs)
    check_response(
        path, method, response.status_code, response.headers.get("Content-Type"), response.content
    )


def test_failures_match_the_document(runner: FakeRunner) -> None:
    runner.error = RuntimeError("bug")
    client = testing.TestClient(create_app(runner))
    response = client.simulate_post("/eval", json={"input": "1"})
    assert response.status_code == 500
    check_response("/eval", "POST", 500, response.headers["Content-Type"], response.content)
    runner.error = None
    runner.result = EvalResult.failed([], "OSError: could not prepare the sandbox")
    response = client.simulate_get("/health")
    assert response.status_code == 503
    check_response("/health", "GET", 503, response.headers["Content-Type"], response.content)


def test_the_documented_statuses_are_the_engines() -> None:
    from snekbox.result import Status

    documented = DOCUMENT["components"]["schemas"]["EvalResponse"]["properties"]["status"]["enum"]
    assert documented == [status.value for status in Status]
