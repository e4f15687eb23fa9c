"""``snekbox.api.snekapi.SnekAPI`` with its engine replaced, as the original's own tests do it."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from unittest import mock

import pytest
from falcon import testing

from snekbox.api.snekapi import SnekAPI
from snekbox.result import EvalResult

ORIGINAL_SHAPES = [
    {"input": "print('hi')"},
    {"args": ["-c", "print('hi')"]},
    {"input": "print('hi')", "args": ["-c"]},
    {
        "args": ["main.py"],
        "files": [{"path": "main.py", "content": base64.b64encode(b"1").decode()}],
    },
    {"args": ["test.py"], "files": [{"path": "folder/../hm"}]},
    {"args": ["-m", "timeit", "-s", "import atexit\nx = 1", "x"], "files": []},
    {"input": "1", "executable_path": "/snekbin/python/default/bin/python"},
]


@pytest.fixture
def patched() -> Iterator[mock.MagicMock]:
    with mock.patch("snekbox.api.snekapi.NsJail", autospec=True) as nsjail:
        nsjail.return_value.python3.return_value = EvalResult(
            args=[], returncode=0, stdout="output", stderr="error"
        )
        yield nsjail


def test_the_constructor_passes_every_argument_to_nsjail(patched: mock.MagicMock) -> None:
    SnekAPI("/usr/bin/nsjail", max_output_size=5, memfs_instance_size=1024)
    patched.assert_called_once_with("/usr/bin/nsjail", max_output_size=5, memfs_instance_size=1024)


@pytest.mark.parametrize("body", ORIGINAL_SHAPES)
def test_a_replaced_engine_answers_every_original_request_shape(
    patched: mock.MagicMock, body: dict
) -> None:
    client = testing.TestClient(SnekAPI())
    response = client.simulate_post("/eval", json=body)
    assert response.status_code == 200, response.json
    assert response.json == {"stdout": "output", "returncode": 0, "files": []}
    patched.return_value.python3.assert_called_once()


def test_the_package_and_api_export_the_same_names() -> None:
    import snekbox
    import snekbox.api
    import snekbox.nsjail

    assert snekbox.SnekAPI is snekbox.api.SnekAPI is SnekAPI
    assert snekbox.NsJail is snekbox.nsjail.NsJail
    assert isinstance(snekbox.DEBUG, bool)


def test_the_original_logging_module_path_resolves() -> None:
    from snekbox.logging import GunicornLogger, init_logger, init_sentry

    assert GunicornLogger.__name__ == "GunicornLogger"
    assert callable(init_logger) and callable(init_sentry)
