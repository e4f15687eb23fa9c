"""Why each run stopped and what it used, and per-request limits, over real HTTP and sandboxes."""

from __future__ import annotations

import pytest

from tests.support.openapi_doc import ORIGINAL_FIELDS, USAGE_FIELDS, check_response
from tests.support.server import Server

pytestmark = pytest.mark.integration

MiB = 1024**2
FORKS = (
    "import os, time\n"
    "for _ in range(10):\n"
    "    if os.fork() == 0:\n"
    "        time.sleep(2); os._exit(0)\n"
)


def post(server: Server, body: dict) -> dict:
    """POST `body` asking for the status and usage fields, and check the answer's shape."""
    response = server.post_eval({**body, "details": True})
    assert response.status == 200, response.body
    check_response("/eval", "POST", 200, response.headers["Content-Type"], response.body)
    return response.json


def test_an_ok_run_reports_its_usage(server: Server) -> None:
    answer = post(server, {"input": "x = bytearray(20 * 1024 * 1024); print(len(x))"})
    assert set(answer) == {*ORIGINAL_FIELDS, *USAGE_FIELDS}
    assert answer["status"] == "ok"
    assert 0 < answer["duration"] < 5
    assert 0 < answer["cpu_time"] < 5
    assert 20 * MiB <= answer["memory_peak"] <= 70 * MiB
    assert answer["stdout_truncated"] is False
    assert answer["files_skipped"] == []


@pytest.mark.parametrize(
    ("body", "returncode", "status"),
    [
        ({"input": "raise SystemExit(3)"}, 3, "error"),
        ({"input": "while True: pass", "limits": {"time": 1}}, 137, "timed_out"),
        ({"input": "x = bytearray(200 * 1024 * 1024)"}, 137, "out_of_memory"),
        ({"input": FORKS, "limits": {"pids": 4}}, None, "pids_limit"),
        ({"input": "import ctypes; ctypes.string_at(0)"}, 139, "signaled"),
        ({"input": "print('x' * 10_000)", "limits": {"output_size": 100}}, 143, "output_limit"),
        ({"args": ["-c", "1\0"]}, None, "failed"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_status_says_why_the_run_stopped(
    server: Server, body: dict, returncode: int | None, status: str
) -> None:
    answer = post(server, body)
    assert answer["status"] == status, answer
    if returncode is not None or status == "failed":
        assert answer["returncode"] == returncode


def test_output_cap_is_reported(server: Server) -> None:
    answer = post(server, {"input": "print('x' * 10_000)", "limits": {"output_size": 100}})
    assert answer["stdout"] == "x" * 100
    assert answer["stdout_truncated"] is True


def test_skipped_files_are_listed_with_a_reason(server: Server) -> None:
    code = (
        "import os\n"
        "open('.hidden', 'w').write('h')\n"
        "os.symlink('/etc/passwd', 'passwd')\n"
        "open('kept', 'w').write('k')\n"
    )
    answer = post(server, {"input": code})
    assert [f["path"] for f in answer["files"]] == ["kept"]
    assert sorted(answer["files_skipped"], key=lambda s: s["path"]) == [
        {"path": ".hidden", "reason": "hidden"},
        {"path": "passwd", "reason": "link outside the memfs"},
    ]


def test_limits_raise_the_time_limit(server: Server) -> None:
    code = "import time; time.sleep(7); print('slept')"
    assert post(server, {"input": code})["status"] == "timed_out"  # the default 6 s
    answer = post(server, {"input": code, "limits": {"time": 9}})
    assert (answer["stdout"], answer["status"]) == ("slept\n", "ok")


def test_limits_raise_and_lower_the_memory_limit(server: Server) -> None:
    code = "x = bytearray(100 * 1024 * 1024); print('ok')"
    assert post(server, {"input": code})["status"] == "out_of_memory"  # the default 70 MiB
    raised = post(server, {"input": code, "limits": {"memory": 200 * MiB}})
    assert (raised["stdout"], raised["status"]) == ("ok\n", "ok")
    assert raised["memory_peak"] >= 100 * MiB
    lowered = post(
        server, {"input": "x = bytearray(30 * 1024 * 1024)", "limits": {"memory": 20 * MiB}}
    )
    assert (lowered["returncode"], lowered["status"]) == (137, "out_of_memory")


def test_limits_raise_the_process_limit(server: Server) -> None:
    code = (
        "import os, time\n"
        "children = []\n"
        "for _ in range(20):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        time.sleep(1); os._exit(0)\n"
        "    children.append(pid)\n"
        "for pid in children:\n"
        "    os.waitpid(pid, 0)\n"
        "print('joined')\n"
    )
    assert post(server, {"input": code})["status"] == "pids_limit"  # 15 processes
    answer = post(server, {"input": code, "limits": {"pids": 40}})
    assert (answer["stdout"], answer["status"]) == ("joined\n", "ok")


def test_limits_raise_the_output_cap(server: Server) -> None:
    code = "print('x' * 1_500_000)"
    assert post(server, {"input": code})["status"] == "output_limit"  # 1 000 000 characters
    answer = post(server, {"input": code, "limits": {"output_size": 2_000_000}})
    assert answer["status"] == "ok"
    assert len(answer["stdout"]) == 1_500_001


def test_limits_above_the_maximum_are_refused(server: Server) -> None:
    response = server.post_eval({"input": "1", "limits": {"memory": 2**40}})
    assert response.status == 400
    assert response.json == {
        "title": "Request limit is above the server's maximum",
        "description": f"limits.memory is {2**40} bytes; this server allows at most "
        f"{512 * MiB} bytes.",
    }
    check_response("/eval", "POST", 400, response.headers["Content-Type"], response.body)
