"""The program's output comes back whole, in order, decoded, and capped."""

from __future__ import annotations

import concurrent.futures
import logging

from snekbox.nsjail import NsJail
from snekbox.snekio import FileAttachment
from tests.support.engine import RunCode, plain


def test_print_returns_exact_stdout(run: RunCode) -> None:
    result = run("print('Hello, world!')")
    assert result.returncode == 0
    assert result.stdout == "Hello, world!\n"
    assert result.stderr is None
    assert result.files == []


def test_print_from_a_file(nsjail: NsJail) -> None:
    main = FileAttachment("main.py", b"import sys\nprint('from a file', sys.argv[1:])\n")
    result = nsjail.python3(["main.py", "arg"], files=[main])
    assert result.returncode == 0
    assert result.stdout == "from a file ['arg']\n"


def test_stdout_before_a_traceback_stays_before_it(run: RunCode) -> None:
    result = run("print('first'); raise ValueError('second')")
    assert result.returncode == 1
    assert plain(result.stdout).startswith("first\nTraceback (most recent call last):")
    assert plain(result.stdout).rstrip().endswith("ValueError: second")


def test_stderr_is_merged_in_write_order(run: RunCode) -> None:
    result = run(
        """
        import sys
        for i in range(50):
            (sys.stdout if i % 2 else sys.stderr).write(f"{i} ")
        """
    )
    assert result.stdout == " ".join(str(i) for i in range(50)) + " "


def test_unencodable_output_is_an_error_in_the_program(run: RunCode) -> None:
    result = run("print(chr(56550))")
    assert result.returncode == 1
    assert "UnicodeEncodeError" in result.stdout


def test_invalid_utf8_in_the_pipe_fails_the_run(run: RunCode) -> None:
    result = run("import sys; sys.stdout.buffer.write(b'ok \\xff\\xfe'); sys.stdout.flush()")
    assert result.returncode is None
    assert result.stdout == "UnicodeDecodeError: invalid Unicode in output pipe"


def test_null_byte_in_args_fails_the_run(nsjail: NsJail) -> None:
    result = nsjail.python3(["-c", "print('a\0b')"])
    assert result.returncode is None
    assert result.stdout == "ValueError: embedded null byte"


def test_input_raises_eof_error(run: RunCode) -> None:
    result = run("input()")
    assert result.returncode == 1
    assert plain(result.stdout).rstrip().endswith("EOFError: EOF when reading a line")


def test_timeit_with_multiline_setup_and_atexit(nsjail: NsJail) -> None:
    # The bot's !timeit: a multi-line setup swaps stdout and prints from an atexit hook.
    setup = (
        "import atexit, sys\n"
        "from collections import deque\n"
        "class Last:\n"
        "    def __init__(self): self.lines = deque(maxlen=1)\n"
        "    def write(self, text): self.lines.append(text) if text.strip() else None\n"
        "    def flush(self): pass\n"
        "sys.stdout = last = Last()\n"
        "atexit.register(lambda: print(last.lines[-1], file=sys.__stdout__))\n"
    )
    result = nsjail.python3(["-m", "timeit", "-n", "100", "-s", setup, "sum(range(10))"])
    assert result.returncode == 0, result.stdout
    assert "100 loops, best of 5:" in result.stdout


def test_leading_empty_args_are_dropped_and_later_ones_kept(nsjail: NsJail) -> None:
    result = nsjail.python3(["", "", "-c", "import sys; print(sys.argv)", "", "x"])
    assert result.returncode == 0
    assert result.stdout == "['-c', '', 'x']\n"


def test_output_past_the_cap_is_truncated_with_143(nsjail: NsJail) -> None:
    result = nsjail.python3(["-c", "print('A' * 3_000_000, end='')"])
    assert result.returncode == 143
    assert result.stdout == "A" * nsjail.max_output_size


def test_output_cap_counts_characters(nsjail: NsJail) -> None:
    result = nsjail.python3(["-c", "print('é' * 1_500_000, end='')"])
    assert result.returncode == 143
    assert result.stdout == "é" * nsjail.max_output_size


def test_output_just_under_the_cap_is_whole(nsjail: NsJail) -> None:
    size = nsjail.max_output_size
    result = nsjail.python3(["-c", f"print('B' * {size}, end='')"])
    assert result.returncode == 0
    assert result.stdout == "B" * size


def test_output_written_just_before_exit_is_never_lost_under_load(nsjail: NsJail) -> None:
    # The original stopped reading when NsJail exited and could return part of the output.
    code = "import sys; sys.stdout.write('x' * 60_000 + 'END'); sys.stdout.flush(); sys.exit(0)"
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: nsjail.python3(["-c", code]), range(16)))
    for result in results:
        assert result.returncode == 0
        assert result.stdout == "x" * 60_000 + "END"


def test_output_cap_holds_under_load(nsjail: NsJail) -> None:
    code = "import os; os.write(1, b'y' * 2_500_000); os._exit(0)"
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: nsjail.python3(["-c", code]), range(12)))
    for result in results:
        assert result.returncode == 143
        assert result.stdout == "y" * nsjail.max_output_size


def test_nsjail_log_never_reaches_stdout(run: RunCode, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="snekbox")
    result = run("print('only this')")
    assert result.stdout == "only this\n"
    assert any("exited with status: 0" in r.getMessage() for r in caplog.records)
