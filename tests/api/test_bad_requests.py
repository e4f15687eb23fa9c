"""Every malformed or unservable /eval request is a clear 4xx in JSON, never a 500."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path

import pytest
from falcon import testing

from snekbox.api import create_app
from snekbox.api.request import MAX_ARG_BYTES, MAX_PATH_DEPTH
from snekbox.services.settings import ApiSettings
from tests.support.api import SMALL_BODY_LIMIT, FakeRunner

SCHEMA_TITLE = "Request data failed validation"
FILE_TITLE = "Request file is invalid"


def assert_error(response: testing.Result, status: int, title: str) -> str:
    """Check the status, the JSON content type and the exact error shape; return the text."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert set(response.json) == {"title", "description"}
    assert response.json["title"] == title
    assert isinstance(response.json["description"], str) and response.json["description"]
    assert "Traceback" not in response.text
    return response.json["description"]


# -- the schema ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "description"),
    [
        ({"stuff": "foo"}, "{'stuff': 'foo'} is not valid under any of the given schemas"),
        ({}, "{} is not valid under any of the given schemas"),
        ({"args": 400}, "400 is not of type 'array'"),
        ({"input": 400}, "400 is not of type 'string'"),
        ({"args": ["x", 1]}, "1 is not of type 'string'"),
        ({"input": "", "files": "x"}, "'x' is not of type 'array'"),
        ({"input": "", "files": [1]}, "1 is not of type 'object'"),
        ({"input": "", "files": [{}]}, "'path' is a required property"),
        ({"input": "", "files": [{"path": 1}]}, "1 is not of type 'string'"),
        ({"input": "", "files": [{"path": "a", "content": 1}]}, "1 is not of type 'string'"),
        ({"input": "", "executable_path": 1}, "1 is not of type 'string'"),
        ([], "[] is not of type 'object'"),
        ("input", "'input' is not of type 'object'"),
        (None, "None is not of type 'object'"),
    ],
)
def test_schema_errors(client: testing.TestClient, body: object, description: str) -> None:
    response = client.simulate_post("/eval", body=json.dumps(body))
    assert assert_error(response, 400, SCHEMA_TITLE) == description


@pytest.mark.parametrize("path", ["/abs", "/", "a\x00b", "\x00"])
def test_absolute_or_nul_paths_fail_the_schema(client: testing.TestClient, path: str) -> None:
    response = client.simulate_post("/eval", json={"input": "", "files": [{"path": path}]})
    assert "does not match" in assert_error(response, 400, SCHEMA_TITLE)


def test_schema_messages_quote_huge_values_briefly(client: testing.TestClient) -> None:
    response = client.simulate_post("/eval", json={"input": "", "files": "x" * 50_000})
    assert len(assert_error(response, 400, SCHEMA_TITLE)) < 400


# -- files -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["../x", "..", "a/../../x", "a/b/../../../etc/passwd"])
def test_paths_that_climb_out_are_refused(client: testing.TestClient, path: str) -> None:
    response = client.simulate_post("/eval", json={"input": "", "files": [{"path": path}]})
    assert "traverse" in assert_error(response, 400, FILE_TITLE)


@pytest.mark.parametrize("content", ["not base64!", "YQ", "YQ==YQ=="])
def test_invalid_base64_is_refused(client: testing.TestClient, content: str) -> None:
    files = [{"path": "ok.txt", "content": base64.b64encode(b"x").decode()}]
    files.append({"path": "bad.txt", "content": content})
    response = client.simulate_post("/eval", json={"input": "", "files": files})
    description = assert_error(response, 400, FILE_TITLE)
    assert description == "Invalid base64 encoding for file 'bad.txt'"  # the original's text


@pytest.mark.parametrize("path", ["../secrets", "../../dir", "dir/../../secrets", "a/../../../b"])
def test_a_climbing_path_gets_the_originals_exact_error(
    client: testing.TestClient, path: str
) -> None:
    response = client.simulate_post("/eval", json={"args": ["t.py"], "files": [{"path": path}]})
    assert response.status_code == 400
    assert response.json == {
        "title": "Request file is invalid",
        "description": f"File path '{path}' may not traverse beyond root",
    }


@pytest.mark.parametrize("path", [r"etc/passwd\0", r"a\0b", r"\0", "var/\x00/path"])
def test_a_nul_or_a_literal_backslash_zero_in_a_path_is_refused(
    client: testing.TestClient, path: str
) -> None:
    response = client.simulate_post("/eval", json={"args": ["t.py"], "files": [{"path": path}]})
    assert response.status_code == 400
    assert response.json["title"] == "Request data failed validation"
    assert "does not match" in response.json["description"]


def test_an_unsupported_media_type_gets_the_originals_exact_error(
    client: testing.TestClient,
) -> None:
    response = client.simulate_post(
        "/eval", body="<xml/>", headers={"Content-Type": "application/xml"}
    )
    assert response.status_code == 415
    assert response.json == {
        "title": "415 Unsupported Media Type",
        "description": "application/xml is an unsupported media type.",
    }


def test_path_nested_too_deep_is_refused(client: testing.TestClient) -> None:
    path = "a/" * (MAX_PATH_DEPTH + 1) + "x"
    response = client.simulate_post("/eval", json={"input": "", "files": [{"path": path}]})
    assert "levels deep" in assert_error(response, 400, FILE_TITLE)


def test_path_nested_absurdly_deep_is_refused(client: testing.TestClient) -> None:
    path = "a/" * 20_000 + "x"
    response = client.simulate_post("/eval", json={"input": "", "files": [{"path": path}]})
    assert "bytes long" in assert_error(response, 400, FILE_TITLE)


def test_overlong_file_name_is_refused(client: testing.TestClient) -> None:
    response = client.simulate_post("/eval", json={"input": "", "files": [{"path": "n" * 256}]})
    assert "longer than 255 bytes" in assert_error(response, 400, FILE_TITLE)


def test_unencodable_path_is_refused(client: testing.TestClient) -> None:
    body = '{"input": "", "files": [{"path": "bad\\ud800name"}]}'
    response = client.simulate_post("/eval", body=body)
    assert "not valid Unicode" in assert_error(response, 400, FILE_TITLE)


def test_deep_path_at_the_limit_is_fine(client: testing.TestClient) -> None:
    path = "a/" * (MAX_PATH_DEPTH - 1) + "x"
    response = client.simulate_post("/eval", json={"input": "", "files": [{"path": path}]})
    assert response.status_code == 200


# -- args ------------------------------------------------------------------------------------


@pytest.fixture
def big_client(runner: FakeRunner) -> testing.TestClient:
    """A client whose body cap admits args at the operating system's limits."""
    settings = ApiSettings(max_concurrent_runs=1, max_body_size=64 * 1024**2, body_timeout=5)
    return testing.TestClient(create_app(runner, settings))


def test_single_arg_too_long_for_the_os(big_client: testing.TestClient, runner: FakeRunner) -> None:
    response = big_client.simulate_post("/eval", json={"input": "#" * (MAX_ARG_BYTES + 1)})
    description = assert_error(response, 400, "Request args are too long")
    assert "Argument 1" in description and str(MAX_ARG_BYTES) in description
    assert runner.calls == []


def test_all_args_together_too_long_for_the_os(big_client: testing.TestClient) -> None:
    args = ["#" * (MAX_ARG_BYTES - 10)] * 20
    response = big_client.simulate_post("/eval", json={"args": args})
    assert "for all of them" in assert_error(response, 400, "Request args are too long")


def test_arg_at_the_per_arg_limit_is_fine(big_client: testing.TestClient) -> None:
    response = big_client.simulate_post("/eval", json={"input": "#" * MAX_ARG_BYTES})
    assert response.status_code == 200


def test_multibyte_arg_over_the_limit(big_client: testing.TestClient) -> None:
    response = big_client.simulate_post("/eval", json={"input": "é" * (MAX_ARG_BYTES // 2 + 1)})
    assert_error(response, 400, "Request args are too long")


# -- executable_path -------------------------------------------------------------------------


def test_missing_executable(client: testing.TestClient, runner: FakeRunner) -> None:
    response = client.simulate_post(
        "/eval", json={"input": "", "executable_path": "/snekbin/python/0.0/bin/python"}
    )
    assert_error(response, 400, "executable_path does not exist")
    assert runner.calls == []


NOT_AN_INTERPRETER = "is not an interpreter of this server; GET /info lists them."


def rooted_client(runner: FakeRunner, settings: ApiSettings, root: Path) -> testing.TestClient:
    """A client whose server takes interpreters from `root`."""
    return testing.TestClient(create_app(runner, replace(settings, interpreter_root=str(root))))


def test_executable_that_is_a_directory(
    runner: FakeRunner, settings: ApiSettings, tmp_path: Path
) -> None:
    (tmp_path / "3.13" / "bin").mkdir(parents=True)
    client = rooted_client(runner, settings, tmp_path)
    body = {"input": "", "executable_path": str(tmp_path / "3.13" / "bin")}
    assert_error(client.simulate_post("/eval", json=body), 400, "executable_path is not a file")


def test_executable_without_exec_permission(
    runner: FakeRunner, settings: ApiSettings, tmp_path: Path
) -> None:
    file = tmp_path / "python"
    file.write_text("")
    file.chmod(0o644)
    client = rooted_client(runner, settings, tmp_path)
    response = client.simulate_post("/eval", json={"input": "", "executable_path": str(file)})
    # root may execute any file with at least one execute bit; 0o644 has none.
    assert_error(response, 400, "executable_path is not executable")


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",  # exists, not executable
        "/bin/sh",  # exists, executable
        "/etc",  # a directory
        "/no/such/file",
        "/snekbin/python/../../bin/sh",  # climbs out of the root
        "/snekbin/python",  # the root itself
        "relative/python",
    ],
)
def test_a_path_outside_the_interpreter_root_gets_one_answer(
    client: testing.TestClient, runner: FakeRunner, path: str
) -> None:
    response = client.simulate_post("/eval", json={"input": "", "executable_path": path})
    assert response.status_code == 400
    assert response.json["title"] == "executable_path does not exist"
    assert response.json["description"].endswith(NOT_AN_INTERPRETER)
    assert runner.calls == []


def test_a_link_in_the_root_leading_out_of_it_gets_the_same_answer(
    runner: FakeRunner, settings: ApiSettings, tmp_path: Path
) -> None:
    (tmp_path / "evil").symlink_to("/bin/sh")
    client = rooted_client(runner, settings, tmp_path)
    response = client.simulate_post(
        "/eval", json={"input": "", "executable_path": str(tmp_path / "evil")}
    )
    assert response.json["description"].endswith(NOT_AN_INTERPRETER)


@pytest.mark.parametrize("path", ["/bin/\x00sh", "/bin/\udcff\ud800", ""])
def test_impossible_executable_paths(client: testing.TestClient, path: str) -> None:
    body = json.dumps({"input": "", "executable_path": path})
    response = client.simulate_post("/eval", body=body)
    assert_error(response, 400, "executable_path does not exist")


# -- the body --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_non_json_is_415(client: testing.TestClient, content_type: str) -> None:
    response = client.simulate_post(
        "/eval", body='{"input": "1"}', headers={"Content-Type": content_type}
    )
    assert content_type in assert_error(response, 415, "415 Unsupported Media Type")


def test_body_over_the_cap_is_413(client: testing.TestClient, runner: FakeRunner) -> None:
    response = client.simulate_post("/eval", json={"input": "#" * SMALL_BODY_LIMIT})
    assert str(SMALL_BODY_LIMIT) in assert_error(response, 413, "413 Content Too Large")
    assert runner.calls == []


@pytest.mark.parametrize("body", ["", "{", "{'input': 1}", '{"input": "1"} x', "\xff", "nan"])
def test_malformed_json(client: testing.TestClient, body: str) -> None:
    response = client.simulate_post("/eval", body=body)
    assert assert_error(response, 400, "Invalid JSON").startswith("Could not parse JSON body")


def test_huge_integer_is_malformed_json(client: testing.TestClient) -> None:
    response = client.simulate_post("/eval", body='{"input": ' + "9" * 5000 + "}")
    assert_error(response, 400, "Invalid JSON")


def test_absurdly_nested_json(client: testing.TestClient) -> None:
    response = client.simulate_post("/eval", body="[" * 30_000 + "]" * 30_000)
    assert_error(response, 400, "Request data is nested too deeply")


@pytest.mark.parametrize("depth", [100, 500, 900, 990])
def test_nested_values_never_500(client: testing.TestClient, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    for body in (
        nested,
        f'{{"args": {nested}}}',
        f'{{"input": "", "files": [{{"path": {nested}}}]}}',
    ):
        response = client.simulate_post("/eval", body=body)
        assert response.status_code == 400, (depth, response.text)
        assert set(response.json) == {"title", "description"}
