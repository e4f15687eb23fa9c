"""The production image, run as the README says, answers the bot's requests for real.

Twice: with only what the image holds at /snekbox/user_base (no eval packages: an empty
directory NsJail must still be able to mount), and with the README's eval packages volume.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator

import pytest
import yaml

from tests.image import engine

# Tracebacks come coloured (PYTHON_COLORS=1 in the jail, as the bot shows them).
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
TIMEIT_SETUP = """\
import atexit
import sys
from collections import deque

class LastLine:
    def __init__(self):
        self.lines = deque(maxlen=1)
    def write(self, text):
        if text.strip():
            self.lines.append(text)
    def flush(self):
        pass

buffer = LastLine()
sys.stdout = buffer
atexit.register(lambda: print(''.join(buffer.lines), file=sys.__stdout__))
"""


@pytest.fixture(scope="module", params=["image user_base", "eval packages volume"])
def server(request: pytest.FixtureRequest, production_image: str) -> Iterator[engine.Container]:
    options: list[str] = []
    if request.param == "eval packages volume":
        volume = request.getfixturevalue("eval_packages_volume")
        options = ["-v", f"{volume}:/snekbox/user_base:ro"]
    container = engine.Container.start(production_image, request.param.replace(" ", "-"), *options)
    try:
        engine.wait_until_healthy(container.address, container.logs)
        yield container
    finally:
        container.remove()


def run(server: engine.Container, job: dict, timeout: float = engine.HTTP_TIMEOUT) -> dict:
    answer = engine.request(server.address, "POST", "/eval", job, timeout=timeout)
    assert answer.status == 200, (answer.status, answer.body[:2000], server.logs())
    return answer.json


def test_health_answers_200(server: engine.Container) -> None:
    answer = engine.request(server.address, "GET", "/health")
    assert answer.status == 200, answer.body


def test_bot_eval_job_runs_main_py(server: engine.Container) -> None:
    result = run(server, engine.eval_job("import sys\nprint('hi', sys.version_info[:2])"))
    assert engine.bot_view(result) == {"stdout": "hi (3, 13)\n", "returncode": 0, "files": []}


def test_bot_timeit_job_keeps_multiline_setup_and_atexit(server: engine.Container) -> None:
    job = {
        "args": ["-m", "timeit", "-s", TIMEIT_SETUP, "sum(range(100))"],
        "files": [],
        "executable_path": f"/snekbin/python/{engine.DEFAULT_INTERPRETER}/bin/python",
    }
    result = run(server, job)
    assert result["returncode"] == 0, result
    assert re.fullmatch(r"\d+ loops?, best of \d+: .+ per loop\s*", result["stdout"]), result


def test_time_limit_kills_at_six_seconds_with_137(server: engine.Container) -> None:
    started = time.monotonic()
    result = run(server, engine.eval_job("while True:\n    pass"))
    elapsed = time.monotonic() - started
    assert result["returncode"] == 137, result
    assert 5.5 < elapsed < 12, elapsed


def test_memory_bomb_is_killed_with_137(server: engine.Container) -> None:
    result = run(server, engine.eval_job("data = b'x' * (500 * 1024 * 1024)\nprint(len(data))"))
    assert result["returncode"] == 137, result


def test_cant_fork_past_the_process_limit(server: engine.Container) -> None:
    code = (
        "import os, time\n"
        "count = 0\n"
        "try:\n"
        "    for _ in range(50):\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(3)\n"
        "            os._exit(0)\n"
        "        count += 1\n"
        "except OSError as error:\n"
        "    print('stopped after', count, type(error).__name__)\n"
    )
    result = run(server, engine.eval_job(code))
    assert result["returncode"] == 0, result
    words = result["stdout"].split()
    assert words[:2] == ["stopped", "after"] and int(words[2]) < 15, result


def test_cant_use_network(server: engine.Container) -> None:
    code = (
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('1.1.1.1', 80), timeout=3)\n"
        "    print('connected')\n"
        "except OSError as error:\n"
        "    print('no network:', error)\n"
    )
    result = run(server, engine.eval_job(code))
    assert result["stdout"].startswith("no network:"), result


def test_files_written_to_home_come_back(server: engine.Container) -> None:
    code = "open('out.txt', 'w').write('data')\nopen('_hidden', 'w').write('x')"
    result = run(server, engine.eval_job(code))
    assert result["returncode"] == 0, result
    assert [(f["path"], f["size"], base64.b64decode(f["content"])) for f in result["files"]] == [
        ("out.txt", 4, b"data")
    ]


def test_free_threaded_interpreter_runs_without_the_gil(server: engine.Container) -> None:
    code = "import sys\nprint(sys._is_gil_enabled())"
    result = run(server, engine.eval_job(code, interpreter="3.13t"))
    assert engine.bot_view(result) == {"stdout": "False\n", "returncode": 0, "files": []}


def test_numpy_only_with_the_eval_packages(server: engine.Container) -> None:
    result = run(server, engine.eval_job("import numpy\nprint(numpy.arange(10).sum())"))
    if server.name.endswith("eval-packages-volume"):
        assert engine.bot_view(result) == {"stdout": "45\n", "returncode": 0, "files": []}
    else:
        assert result["returncode"] == 1, result
        last = ANSI_ESCAPE.sub("", result["stdout"]).strip().splitlines()[-1]
        assert last == "ModuleNotFoundError: No module named 'numpy'", result


def test_compose_healthcheck_command_passes_inside_the_container(
    server: engine.Container,
) -> None:
    compose = yaml.safe_load((engine.REPO / "docker-compose.yml").read_text())
    kind, *command = compose["services"]["snekbox"]["healthcheck"]["test"]
    assert kind == "CMD"
    result = server.exec(*command)
    assert result.returncode == 0, result.stdout + result.stderr
