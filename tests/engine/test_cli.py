"""``python -m snekbox CODE [nsjail options] [--- python args]`` runs a real jail."""

from __future__ import annotations

import subprocess
import sys


def snekbox(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snekbox", *args], capture_output=True, text=True, timeout=60
    )


def test_prints_output_and_exits_zero() -> None:
    result = snekbox("print('hi from the cli')")
    assert result.returncode == 0
    assert result.stdout == "hi from the cli\n\n"  # print(): the output, then one newline


def test_exits_with_the_programs_return_code() -> None:
    assert snekbox("raise SystemExit(7)").returncode == 7


def test_nsjail_options_override_the_config() -> None:
    result = snekbox("import time; time.sleep(5); print('late')", "--time_limit", "1")
    assert result.returncode == 137
    assert "late" not in result.stdout


def test_python_args_after_the_separator() -> None:
    result = snekbox("pass", "---", "-m", "timeit", "-n", "10")
    assert result.returncode == 0
    assert "10 loops" in result.stdout


def test_stats_prints_the_summary_after_the_output() -> None:
    result = snekbox("x = bytearray(200 * 1024 * 1024)", "--stats")
    assert result.returncode == 137
    assert "status=out_of_memory returncode=137" in result.stderr
    assert "memory_peak=" in result.stderr
