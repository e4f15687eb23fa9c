"""Which command lines a pre-started interpreter may run (pure logic, no jail)."""

from __future__ import annotations

import io
import zipfile

import pytest

from snekbox.pool.forms import MAX_ARG_BYTES, encode_arguments, is_pooled_form
from snekbox.snekio import FileAttachment

MAIN = FileAttachment("main.py", b"print('hi')")
NESTED = FileAttachment("sub/job.py", b"print('hi')")


def _zip_app() -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("__main__.py", "print(1)")
    return archive.getvalue()


@pytest.mark.parametrize(
    "py_args",
    [
        ["-c", "print(1)"],
        ["-c", "print(1)", "-c", "--", "-I"],
        ["-m", "timeit", "-s", "import math\nx = 2", "math.sqrt(x)"],
        ["main.py"],
        ["main.py", "-I", "arg"],
        ["./main.py"],
        ["/home/main.py"],
        ["sub/job.py"],
        ["-c", ""],
    ],
)
def test_forms_a_started_interpreter_reproduces(py_args: list[str]) -> None:
    assert is_pooled_form(py_args, [MAIN, NESTED])


@pytest.mark.parametrize(
    "py_args",
    [
        [],
        ["-"],
        ["-c"],
        ["-m"],
        ["-m", ""],
        ["-m", "-x"],
        ["-I", "-c", "print(1)"],
        ["-S", "main.py"],
        ["-X", "dev", "-c", "1"],
        ["-cprint(1)"],
        ["-Ic", "print(1)"],
        ["--version"],
        ["other.py"],
        [""],
        ["sub"],
        ["-c", "print('\0')"],
        ["-c", "\udc80\ud800"],
        ["-c", "x" * (MAX_ARG_BYTES + 1)],
        ["-c", "pass", *["y" * 100_000] * 11],
    ],
)
def test_everything_else_runs_cold(py_args: list[str]) -> None:
    assert not is_pooled_form(py_args, [MAIN, NESTED])


def test_a_script_holding_a_zip_archive_runs_cold() -> None:
    assert not is_pooled_form(["app.py"], [FileAttachment("app.py", _zip_app())])


def test_arguments_travel_nul_separated_as_the_file_system_encodes_them() -> None:
    assert encode_arguments(["-c", "print('é')", "\udcff"]) == b"-c\0print('\xc3\xa9')\0\xff"
    assert encode_arguments(["-c", "a\0b"]) is None
