"""POST /eval with valid requests: what reaches the engine and what the client gets back."""

from __future__ import annotations

import base64
from unittest import mock

import pytest
from falcon import testing

from snekbox.api import SnekAPI
from snekbox.result import EvalResult
from snekbox.snekio import FileAttachment
from tests.support.api import FakeRunner
from tests.support.openapi_doc import ORIGINAL_FIELDS, USAGE_FIELDS


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def original_fields(body: dict) -> dict:
    """The original's part of an answer."""
    return {key: body[key] for key in ORIGINAL_FIELDS}


def test_input_runs_with_dash_c(client: testing.TestClient, runner: FakeRunner) -> None:
    response = client.simulate_post("/eval", json={"input": "print('hi')"})
    assert response.status_code == 200
    assert original_fields(response.json) == {"stdout": "hi\n", "returncode": 0, "files": []}
    assert runner.calls[0]["py_args"] == ["-c", "print('hi')"]
    assert "executable_path" not in runner.calls[0]  # the engine's default interpreter


def test_args_are_passed_unchanged(client: testing.TestClient, runner: FakeRunner) -> None:
    setup = "import sys\nimport atexit\nprint('multi-line setup')"
    args = ["-m", "timeit", "-s", setup, "pass"]
    response = client.simulate_post("/eval", json={"args": args, "files": []})
    assert response.status_code == 200
    assert runner.calls[0]["py_args"] == args


def test_input_is_appended_to_args(client: testing.TestClient, runner: FakeRunner) -> None:
    client.simulate_post("/eval", json={"args": ["-X", "dev", "-c"], "input": "1"})
    assert runner.calls[0]["py_args"] == ["-X", "dev", "-c", "1"]


def test_extra_keys_are_ignored(client: testing.TestClient, runner: FakeRunner) -> None:
    response = client.simulate_post(
        "/eval",
        json={"input": "x", "unknown": True},
        headers={"Authorization": "Bot secret"},
    )
    assert response.status_code == 200


def test_files_reach_the_engine_decoded(client: testing.TestClient, runner: FakeRunner) -> None:
    files = [
        {"path": "main.py", "content": b64(b"print(1)")},
        {"path": "data/empty.txt"},
    ]
    response = client.simulate_post("/eval", json={"args": ["main.py"], "files": files})
    assert response.status_code == 200
    assert runner.calls[0]["files"] == [
        FileAttachment("main.py", b"print(1)"),
        FileAttachment("data/empty.txt", b""),
    ]


def test_returned_files_are_serialised(client: testing.TestClient, runner: FakeRunner) -> None:
    runner.result = EvalResult(
        [], 0, "", files=[FileAttachment("a.txt", b"abc"), FileAttachment("dir/b.bin", b"\x00\xff")]
    )
    response = client.simulate_post("/eval", json={"input": "..."})
    assert response.json["files"] == [
        {"path": "a.txt", "size": 3, "content": b64(b"abc")},
        {"path": "dir/b.bin", "size": 2, "content": b64(b"\x00\xff")},
    ]


def test_failed_run_is_200_with_null_returncode(
    client: testing.TestClient, runner: FakeRunner
) -> None:
    runner.result = EvalResult.failed([], "ValueError: embedded null byte")
    response = client.simulate_post("/eval", json={"input": "\x00", "details": True})
    assert response.status_code == 200
    assert original_fields(response.json) == {
        "stdout": "ValueError: embedded null byte",
        "returncode": None,
        "files": [],
    }
    assert response.json["status"] == "failed"


@pytest.mark.parametrize("path", ["folder/../hm", "backslash\\okay", "a/./b", "ünïcode ✓.txt"])
def test_paths_that_stay_inside_are_fine(
    client: testing.TestClient, runner: FakeRunner, path: str
) -> None:
    response = client.simulate_post("/eval", json={"input": "", "files": [{"path": path}]})
    assert response.status_code == 200, response.json
    assert runner.calls[0]["files"][0].path == path


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json", "application/json; charset=utf-8", "APPLICATION/JSON"],
)
def test_json_content_types_are_accepted(
    client: testing.TestClient, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.simulate_post("/eval", body='{"input": "1"}', headers=headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"


def test_executable_path_is_forwarded(client: testing.TestClient, runner: FakeRunner) -> None:
    python = "/snekbin/python/3.13/bin/python"
    response = client.simulate_post("/eval", json={"input": "1", "executable_path": python})
    assert response.status_code == 200
    assert runner.calls[0]["executable_path"] == python


def test_symlinked_executable_is_fine(client: testing.TestClient) -> None:
    response = client.simulate_post(
        "/eval", json={"input": "1", "executable_path": "/snekbin/python/default/bin/python"}
    )
    assert response.status_code == 200


def test_snekapi_forwards_its_arguments_to_nsjail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNEKBOX_MAX_CONCURRENT_RUNS", "3")
    with mock.patch("snekbox.api.snekapi.NsJail") as nsjail_class:
        nsjail_class.return_value = FakeRunner()
        app = SnekAPI("/bin/nsjail", max_output_size=2_000_000)
        nsjail_class.assert_called_once_with("/bin/nsjail", max_output_size=2_000_000)
        response = testing.TestClient(app).simulate_post("/eval", json={"input": "1"})
    assert response.status_code == 200
    assert response.json["stdout"] == "hi\n"


def test_package_root_exports() -> None:
    import snekbox

    assert snekbox.SnekAPI is SnekAPI
    assert snekbox.NsJail.__name__ == "NsJail"
    assert snekbox.__version__ and snekbox.__version__[0].isdigit()
    with pytest.raises(AttributeError):
        _ = snekbox.NoSuchThing  # type: ignore[attr-defined]


@pytest.mark.parametrize("extra", [{}, {"details": False}])
def test_the_default_answer_is_exactly_the_originals(
    client: testing.TestClient, runner: FakeRunner, extra: dict
) -> None:
    response = client.simulate_post("/eval", json={"input": "print('hi')", **extra})
    assert response.json == {"stdout": "hi\n", "returncode": 0, "files": []}


def test_details_adds_the_status_and_usage_fields(
    client: testing.TestClient, runner: FakeRunner
) -> None:
    response = client.simulate_post("/eval", json={"input": "print('hi')", "details": True})
    assert set(response.json) == {*ORIGINAL_FIELDS, *USAGE_FIELDS}
    assert response.json["status"] == "ok"


def test_details_must_be_a_boolean(client: testing.TestClient) -> None:
    response = client.simulate_post("/eval", json={"input": "1", "details": "yes"})
    assert response.status_code == 400
    assert response.json == {
        "title": "Request data failed validation",
        "description": "'yes' is not of type 'boolean'",
    }
