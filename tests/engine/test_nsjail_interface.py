"""The original's ``snekbox.nsjail`` interface: DEBUG, log parsing, output reading, argv."""

from __future__ import annotations

import io
import logging
from unittest import mock

import pytest

import snekbox.nsjail
from snekbox.nsjail import DEFAULT_EXECUTABLE_PATH, NsJail

LOG_LINES = (
    "[D][2019-06-22T20:07:00+0000][16] void foo::bar()():100 This is a debug message.",
    "[I][2019-06-22T20:07:48+0000] pid=20 ([STANDALONE MODE]) exited with status: 2, "
    "(PIDs left: 0)",
    "[I][2019-06-22T20:07:48+0000][16] Mount: '/lib' -> '/lib' flags:MS_BIND",
    "[W][2019-06-22T20:07:00+0000][16] void foo::bar()():100 This is a warning!",
    "[E][2019-06-22T20:07:00+0000][16] bool cmdline::setupArgv(nsjconf_t*, int, char**, int)"
    "():316 No command-line provided",
    "[F][2019-06-22T20:07:00+0000][16] int main(int, char**)():204 Couldn't parse cmdline options",
    "Invalid Line",
)


def test_debug_is_a_module_level_bool() -> None:
    assert isinstance(snekbox.nsjail.DEBUG, bool)


def parsed(nsjail: NsJail, caplog: pytest.LogCaptureFixture) -> list[str]:
    caplog.set_level(logging.DEBUG, logger="snekbox.nsjail")
    nsjail._parse_log(LOG_LINES)
    return [f"{r.levelname}:{r.name}:{r.getMessage()}" for r in caplog.records]


def test_log_lines_are_logged_at_their_letters_level(
    nsjail: NsJail, caplog: pytest.LogCaptureFixture
) -> None:
    with mock.patch("snekbox.nsjail.DEBUG", new=False):
        records = parsed(nsjail, caplog)
    assert records == [
        "DEBUG:snekbox.nsjail:This is a debug message.",
        "INFO:snekbox.nsjail:pid=20 ([STANDALONE MODE]) exited with status: 2, (PIDs left: 0)",
        "WARNING:snekbox.nsjail:This is a warning!",
        "ERROR:snekbox.nsjail:No command-line provided",
        "ERROR:snekbox.nsjail:Couldn't parse cmdline options",
        "WARNING:snekbox.nsjail:Failed to parse log line 'Invalid Line'",
    ]


def test_info_lines_without_a_pid_are_logged_only_when_debugging(
    nsjail: NsJail, caplog: pytest.LogCaptureFixture
) -> None:
    with mock.patch("snekbox.nsjail.DEBUG", new=True):
        records = parsed(nsjail, caplog)
    assert "INFO:snekbox.nsjail:Mount: '/lib' -> '/lib' flags:MS_BIND" in records


def test_consume_stdout_keeps_exactly_the_cap(nsjail: NsJail) -> None:
    chunk = "a" * nsjail.read_chunk_size
    process = mock.MagicMock()
    process.stdout = io.StringIO(chunk * 110)
    process.poll.return_value = None
    output = nsjail._consume_stdout(process)
    assert output == chunk * 100
    process.terminate.assert_called_once()


def test_consume_stdout_reads_a_short_stream_to_its_end(nsjail: NsJail) -> None:
    process = mock.MagicMock()
    process.stdout = io.StringIO("short\n")
    assert nsjail._consume_stdout(process) == "short\n"
    process.terminate.assert_not_called()


def test_argv_ends_with_options_separator_executable_and_args(nsjail: NsJail) -> None:
    extra = ("--quiet", "--disable_proc")
    result = nsjail.python3(["", "", "-c", "print(1)"], nsjail_args=extra)
    args = result.args
    separator = args.index("--")
    assert tuple(args[separator - len(extra) : separator]) == extra
    assert args[separator + 1 :] == [DEFAULT_EXECUTABLE_PATH, "-c", "print(1)"]
    assert args.count(DEFAULT_EXECUTABLE_PATH) == 1
    assert result.stdout == "1\n"


def test_the_config_names_no_exec_bin(nsjail: NsJail) -> None:
    assert not nsjail.config.HasField("exec_bin")


REEXEC = """
import os, sys
os.unsetenv('PYTHONIOENCODING')
os.execl(sys.executable, {argv0}, '-c', {code!r})
"""


@pytest.mark.parametrize("argv0", ["'python'", "sys.executable"])
def test_a_program_can_re_execute_its_interpreter(
    nsjail: NsJail, interpreter: str, argv0: str
) -> None:
    code = REEXEC.format(argv0=argv0, code="import sys; print(sys.version_info[:2])")
    result = nsjail.python3(["-c", code], executable_path=interpreter)
    version = interpreter.split("/")[-3]
    assert result.returncode == 0, result.stdout
    assert result.stdout == f"{tuple(int(x) for x in version.split('.'))}\n"


@pytest.mark.parametrize("argv0", ["'python'", "sys.executable"])
def test_a_lone_surrogate_without_pythonioencoding_is_invalid_output(
    nsjail: NsJail, interpreter: str, argv0: str
) -> None:
    code = REEXEC.format(argv0=argv0, code="print(chr(56550))")
    result = nsjail.python3(["-c", code], executable_path=interpreter)
    assert (result.returncode, result.stdout) == (
        None,
        "UnicodeDecodeError: invalid Unicode in output pipe",
    )
