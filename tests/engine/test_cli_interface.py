"""The original CLI: ``parse_args()`` reads ``sys.argv``; ``main()`` exits with the run's code."""

from __future__ import annotations

import argparse
from unittest import mock

import pytest

from snekbox.__main__ import main, parse_args


def parsed(*argv: str) -> argparse.Namespace:
    with mock.patch("sys.argv", ["", *argv]):
        return parse_args()


def test_code_alone_runs_with_dash_c() -> None:
    assert parsed("code") == argparse.Namespace(code="code", nsjail_args=[], py_args=["-c"])


def test_options_before_the_separator_go_to_nsjail_and_after_it_to_python() -> None:
    assert parsed("code", "--time_limit", "1", "---", "-m", "timeit") == argparse.Namespace(
        code="code", nsjail_args=["--time_limit", "1"], py_args=["-m", "timeit"]
    )


def test_an_empty_python_args_list_after_the_separator() -> None:
    assert parsed("code", "---").py_args == []


def test_stats_adds_no_attribute() -> None:
    assert vars(parsed("code", "--stats")) == {"code": "code", "nsjail_args": [], "py_args": ["-c"]}


def test_no_code_exits_2_with_argparses_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parsed()
    assert exit_info.value.code == 2
    assert "the following arguments are required: code" in capsys.readouterr().err


def test_main_prints_the_output_and_a_newline(capsys: pytest.CaptureFixture[str]) -> None:
    with mock.patch("sys.argv", ["", "print('hi')"]):
        main()
    assert capsys.readouterr().out == "hi\n\n"


def test_main_exits_with_the_programs_return_code() -> None:
    with mock.patch("sys.argv", ["", "import sys; sys.exit(22)"]), pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 22


def test_main_exits_137_past_an_nsjail_time_limit() -> None:
    argv = ["", "import time; time.sleep(2)", "--time_limit", "1"]
    with mock.patch("sys.argv", argv), pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 137
