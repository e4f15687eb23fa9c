"""POST /eval over real HTTP to a real Gunicorn running real sandboxes."""

from __future__ import annotations

import base64
import os
import re
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.openapi_doc import ORIGINAL_FIELDS
from tests.support.server import Server

pytestmark = pytest.mark.integration

MiB = 1024**2
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def original_fields(body: dict) -> dict:
    """The original's part of an answer; the status and usage fields come on top."""
    return {key: body[key] for key in ORIGINAL_FIELDS}


def test_input_prints(server: Server) -> None:
    response = server.post_eval({"input": "print('hi')"})
    assert response.status == 200
    assert original_fields(response.json) == {"stdout": "hi\n", "returncode": 0, "files": []}


def test_args_run_unchanged(server: Server) -> None:
    response = server.post_eval({"args": ["-c", "import sys; print(sys.argv[1:])", "a b", "ü"]})
    assert response.json["stdout"] == "['a b', 'ü']\n"


def test_stderr_is_merged_into_stdout_in_order(server: Server) -> None:
    code = "import sys\nprint('out 1')\nprint('err', file=sys.stderr)\nprint('out 2')"
    response = server.post_eval({"input": code})
    assert response.json["stdout"] == "out 1\nerr\nout 2\n"


def test_error_exit_is_still_200(server: Server) -> None:
    response = server.post_eval({"input": "raise SystemExit(3)"})
    assert response.status == 200
    assert response.json["returncode"] == 3


def test_stdin_is_at_eof(server: Server) -> None:
    response = server.post_eval({"input": "input()"})
    assert response.json["returncode"] == 1
    plain = ANSI_ESCAPE.sub("", response.json["stdout"])  # PYTHON_COLORS=1 colours tracebacks
    assert plain.rstrip().endswith("EOFError: EOF when reading a line")


def test_the_bots_eval_shape(server: Server) -> None:
    """`!eval`: the code is a file, args name it, and the interpreter is chosen explicitly."""
    response = server.post_eval(
        {
            "args": ["main.py"],
            "files": [{"path": "main.py", "content": b64(b"print(6 * 7)")}],
            "executable_path": "/snekbin/python/default/bin/python",
        }
    )
    assert original_fields(response.json) == {"stdout": "42\n", "returncode": 0, "files": []}


def test_timeit_with_a_multi_line_setup(server: Server) -> None:
    """`!timeit`: the setup swaps stdout and an atexit hook prints timeit's last line."""
    setup = textwrap.dedent(
        """
        import atexit
        import io
        import sys

        # timeit runs the setup before every timing: capture and report only once.
        if sys.stdout is sys.__stdout__:
            _buffer = io.StringIO()
            sys.stdout = _buffer

            def _report():
                lines = _buffer.getvalue().strip().splitlines()
                print(lines[-1] if lines else "", file=sys.__stdout__)

            atexit.register(_report)
        """
    )
    response = server.post_eval(
        {"args": ["-m", "timeit", "-s", setup, "sum(range(100))"], "files": []}
    )
    assert response.json["returncode"] == 0
    assert re.fullmatch(r"\d+ loops?, best of \d+: [\d.]+ \w+ per loop\n", response.json["stdout"])


def test_files_sent_and_returned(server: Server) -> None:
    code = textwrap.dedent(
        """
        from pathlib import Path
        numbers = Path("data/numbers.txt").read_text().split()
        out = Path("results/deep/er")
        out.mkdir(parents=True)
        (out / "sum.txt").write_text(str(sum(map(int, numbers))))
        Path("data/changed.txt").write_text("new")
        Path("_hidden.txt").write_text("not returned")
        Path("binary.bin").write_bytes(bytes(range(256)))
        print("done")
        """
    )
    files = [
        {"path": "main.py", "content": b64(code.encode())},
        {"path": "data/numbers.txt", "content": b64(b"1 2 3 4")},
        {"path": "data/changed.txt", "content": b64(b"old")},
        {"path": "folder/../untouched.txt", "content": b64(b"same")},
    ]
    response = server.post_eval({"args": ["main.py"], "files": files})
    result = response.json
    assert result["stdout"] == "done\n" and result["returncode"] == 0
    # Sorted by path; unmodified inputs and names starting with "_" are not returned.
    assert [f["path"] for f in result["files"]] == [
        "binary.bin",
        "data/changed.txt",
        "results/deep/er/sum.txt",
    ]
    contents = {f["path"]: unb64(f["content"]) for f in result["files"]}
    assert contents == {
        "binary.bin": bytes(range(256)),
        "data/changed.txt": b"new",
        "results/deep/er/sum.txt": b"10",
    }
    assert [f["size"] for f in result["files"]] == [256, 3, 2]


def test_path_that_climbs_out_is_400(server: Server) -> None:
    response = server.post_eval({"input": "", "files": [{"path": "a/../../etc/x"}]})
    assert response.status == 400
    assert response.json["title"] == "Request file is invalid"


def test_default_interpreter_when_none_is_given(server: Server) -> None:
    expected = os.path.basename(os.path.realpath("/snekbin/python/default"))
    response = server.post_eval({"input": "import sys; print('%d.%d' % sys.version_info[:2])"})
    assert response.json["stdout"] == f"{expected}\n"


def test_every_installed_interpreter_is_selectable(server: Server) -> None:
    versions = sorted(p.name for p in Path("/snekbin/python").iterdir() if p.name != "default")
    assert versions
    for version in versions:
        response = server.post_eval(
            {
                "input": "import sys; print(sys.version)",
                "executable_path": f"/snekbin/python/{version}/bin/python",
            }
        )
        assert response.json["returncode"] == 0, response.json
        assert response.json["stdout"].startswith(version.rstrip("tj")), version


@pytest.mark.parametrize(
    ("path", "title"),
    [
        ("/snekbin/python/0.1/bin/python", "executable_path does not exist"),
        ("/snekbin/python/default/bin", "executable_path is not a file"),
        ("/etc/passwd", "executable_path does not exist"),  # outside the interpreter root
    ],
)
def test_executable_path_errors(server: Server, path: str, title: str) -> None:
    response = server.post_eval({"input": "print(1)", "executable_path": path})
    assert response.status == 400
    assert response.json["title"] == title
    assert path in response.json["description"]


def test_three_memory_heavy_runs_each_have_their_own_limit(server: Server) -> None:
    """Three runs of 50 MiB at once all succeed: 150 MiB would break one shared 70 MiB limit."""
    fits = "data = bytearray(50 * 1024 * 1024); import time; time.sleep(1); print(len(data))"
    too_big = "data = bytearray(150 * 1024 * 1024); print('escaped the limit')"
    with ThreadPoolExecutor(6) as pool:
        fitting = [pool.submit(server.post_eval, {"input": fits}) for _ in range(3)]
        over = [pool.submit(server.post_eval, {"input": too_big}) for _ in range(3)]
        for future in fitting:
            assert original_fields(future.result().json) == {
                "stdout": f"{50 * MiB}\n",
                "returncode": 0,
                "files": [],
            }
        for future in over:
            result = future.result().json
            assert result["returncode"] in (1, 137), result  # MemoryError or the OOM killer
            assert "escaped the limit" not in result["stdout"]


def test_output_is_capped(server: Server) -> None:
    response = server.post_eval({"input": "print('x' * 5_000_000)"})
    assert response.json["returncode"] == 143
    assert 900_000 <= len(response.json["stdout"]) <= 1_000_000


def test_null_byte_in_args_is_a_failed_run(server: Server) -> None:
    """As in the original: the run cannot happen, which is a 200 with a null returncode."""
    response = server.post_eval({"args": ["-c", "print(1)\x00"]})
    assert response.status == 200
    assert response.json["returncode"] is None
    assert "null byte" in response.json["stdout"]


def test_args_too_long_for_the_os_is_400(server: Server) -> None:
    response = server.post_eval({"input": "#" * 200_000})
    assert response.status == 400
    assert response.json["title"] == "Request args are too long"


def test_long_code_as_a_file_is_fine(server: Server) -> None:
    code = "# A comment line that makes the file long.\n" * 5_000 + "print(1)"  # 220 KB
    response = server.post_eval(
        {"args": ["main.py"], "files": [{"path": "main.py", "content": b64(code.encode())}]}
    )
    assert response.json["stdout"] == "1\n"
