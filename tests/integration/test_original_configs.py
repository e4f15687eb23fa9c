"""The original's two config files, dropped in unchanged over ours, serve our app.

Its users mount their own `config/gunicorn.conf.py` (sync workers, no hooks) and
`config/snekbox.cfg` over ours, as the original's README tells them to.
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import Server, running_server

ORIGINAL = Path(__file__).parent / "original_config"


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("original")
    shutil.copytree(ORIGINAL, root / "config")
    with running_server(
        root / "server.log", config=root / "config" / "gunicorn.conf.py", cwd=root
    ) as server:
        yield server


def test_the_original_gunicorn_config_runs_two_sync_workers(original: Server) -> None:
    log = original.log()
    assert "Using worker: sync" in log
    assert log.count("Booting worker with pid") == 2


@pytest.mark.parametrize(
    ("body", "stdout"),
    [
        ({"input": "print('hi')"}, "hi\n"),
        ({"args": ["-c", "print('hi')"]}, "hi\n"),
        (
            {
                "args": ["main.py"],
                "files": [{"path": "main.py", "content": base64.b64encode(b"print(6*7)").decode()}],
                "executable_path": "/snekbin/python/default/bin/python",
            },
            "42\n",
        ),
    ],
)
def test_the_original_configs_answer_as_the_original(
    original: Server, body: dict, stdout: str
) -> None:
    response = original.post_eval(body)
    assert response.status == 200
    assert response.json == {"stdout": stdout, "returncode": 0, "files": []}


def test_the_original_configs_enforce_time_and_processes(original: Server) -> None:
    timed_out = original.post_eval({"input": "while True: pass"}).json
    assert timed_out["returncode"] == 137
    forks = original.post_eval(
        {"input": "import os\nfor _ in range(10):\n    os.fork() or __import__('time').sleep(2)"}
    ).json
    assert forks["returncode"] == 1 and "Resource temporarily unavailable" in forks["stdout"]


def test_the_original_configs_return_written_files(original: Server) -> None:
    code = "open('out.txt', 'w').write('data')"
    answer = original.post_eval({"input": code}).json
    assert answer["files"] == [
        {"path": "out.txt", "size": 4, "content": base64.b64encode(b"data").decode()}
    ]
