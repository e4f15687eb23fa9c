"""Each run says why it stopped and what it used, decided from facts the kernel reported."""

from __future__ import annotations

from snekbox.nsjail import EvalLimits, NsJail
from tests.support.engine import RunCode


def test_ok_run_reports_its_usage(run: RunCode) -> None:
    result = run("x = bytearray(20 * 1024 * 1024); print(len(x))")
    assert result.status == "ok"
    assert 0 < result.duration < 5
    assert result.cpu_time is not None and 0 < result.cpu_time < 5
    assert result.memory_peak is not None and result.memory_peak >= 20 * 1024 * 1024
    assert result.stdout_truncated is False
    assert result.files_skipped == []


def test_error_exit(run: RunCode) -> None:
    assert run("raise SystemExit(3)").status == "error"


def test_timed_out(run: RunCode) -> None:
    result = run("while True: pass", limits=EvalLimits(time=1))
    assert (result.returncode, result.status) == (137, "timed_out")
    assert 1 <= result.duration < 4


def test_out_of_memory(run: RunCode) -> None:
    result = run("x = bytearray(200 * 1024 * 1024)")
    assert (result.returncode, result.status) == (137, "out_of_memory")
    assert result.memory_peak is not None and result.memory_peak >= 60 * 1024 * 1024


def test_pids_limit(run: RunCode) -> None:
    result = run("import os\nwhile True:\n    os.fork()")
    assert result.status == "pids_limit"


def test_signaled(run: RunCode) -> None:
    result = run("import ctypes; ctypes.string_at(0)")
    assert (result.returncode, result.status) == (139, "signaled")


def test_output_limit(run: RunCode) -> None:
    result = run("print('x' * 10_000)", limits=EvalLimits(output_size=100))
    assert (result.returncode, result.status) == (143, "output_limit")
    assert result.stdout_truncated is True
    assert result.stdout == "x" * 100


def test_failed(nsjail: NsJail) -> None:
    result = nsjail.python3(["-c", "print('\0')"])
    assert (result.returncode, result.status) == (None, "failed")


def test_skipped_files_say_why(run: RunCode) -> None:
    result = run(
        """
        import os
        open('.hidden', 'w').write('h')
        open('_private', 'w').write('p')
        os.symlink('/etc/passwd', 'passwd')
        os.mkfifo('fifo')
        open('kept', 'w').write('k')
        """
    )
    assert [f.path for f in result.files] == ["kept"]
    reasons = {s.path: s.reason for s in result.files_skipped}
    assert reasons == {
        ".hidden": "hidden",
        "_private": "excluded by pattern",
        "passwd": "link outside the memfs",
        "fifo": "not a regular file",
    }


def test_per_run_limits_can_lower_and_raise(run: RunCode) -> None:
    code = "x = bytearray(90 * 1024 * 1024); print('ok')"
    assert run(code).status == "out_of_memory"
    assert run(code, limits=EvalLimits(memory=150 * 1024 * 1024)).stdout == "ok\n"
    assert run(
        "x = bytearray(10 * 1024 * 1024)", limits=EvalLimits(memory=8 * 1024 * 1024)
    ).status == ("out_of_memory")
    forks = (
        "import os, time\n"
        "for _ in range(10):\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(2); os._exit(0)\n"
    )
    assert run(forks, limits=EvalLimits(pids=4)).status == "pids_limit"


def test_usage_is_serialisable(run: RunCode) -> None:
    usage = run("print(1)").usage()
    assert set(usage) == {
        "status",
        "duration",
        "cpu_time",
        "memory_peak",
        "stdout_truncated",
        "files_skipped",
        "files_skipped_more",
    }
