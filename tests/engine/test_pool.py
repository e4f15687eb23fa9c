"""Pre-started jails: which runs take one, and that a pooled run is a cold run in all it shows.

The whole engine suite also runs with a pool (see ``nsjail`` in conftest); these tests cover
what only the pool has: taking and refilling, falling back to cold, idle retirement, the
clock starting at the hand-over, and that nothing of the launcher reaches the program.
"""

from __future__ import annotations

import json
import os
import re
import signal
import textwrap
import time
from collections.abc import Iterator

import pytest

from snekbox.jail_config import DEFAULT_EXECUTABLE_PATH
from snekbox.limits.table import EvalLimits
from snekbox.nsjail import NsJail
from snekbox.pool import JailPool, PoolSettings
from snekbox.snekio import FileAttachment
from tests.support.engine import (
    POOL_READY_TIMEOUT,
    leftovers,
    plain,
    provisioned_interpreters,
)

DEFAULT = DEFAULT_EXECUTABLE_PATH


class Events:
    """What a pool reported, in order."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, event: str, executable: str) -> None:
        self.seen.append(event)

    def count(self, event: str) -> int:
        return self.seen.count(event)


@pytest.fixture(scope="module")
def engine() -> NsJail:
    """A second engine of this process, so its pool can be started and closed per test."""
    return NsJail()


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def pool(engine: NsJail, events: Events) -> Iterator[JailPool]:
    """Two jails of the default interpreter, full before the test starts."""
    started = engine.start_pool(PoolSettings({DEFAULT: 2}, idle_age=600), events)
    assert started.wait_full(POOL_READY_TIMEOUT)
    yield started
    started.close()
    engine.pool = None
    assert leftovers(engine) == {}


def test_a_run_takes_a_waiting_jail_and_the_pool_starts_another(
    engine: NsJail, pool: JailPool, events: Events
) -> None:
    before = {jail.process.pid for jail in pool.jails()}
    result = engine.python3(["-c", "print('hi')"])
    assert (result.stdout, result.returncode, result.status) == ("hi\n", 0, "ok")
    assert events.count("hit") == 1
    assert pool.wait_full(POOL_READY_TIMEOUT)
    after = {jail.process.pid for jail in pool.jails()}
    assert len(before - after) == 1, "the taken jail is gone, never reused"
    assert events.count("refill") == 3  # two at start, one after the run
    assert "--pass_fd" in result.args
    assert result.args[-3:] == [DEFAULT, "-c", "print('hi')"]


@pytest.mark.parametrize(
    ("py_args", "shows"),
    [
        (["-I", "-c", "import sys; print(sys.flags.isolated)"], "1"),
        (["-S", "-c", "import sys; print('site' in sys.modules)"], "False"),
        (["-E", "-c", "import sys; print(sys.flags.ignore_environment)"], "1"),
        (["-X", "dev", "-c", "import sys; print(sys.flags.dev_mode)"], "True"),
        (["-O", "-c", "print(__debug__)"], "False"),
        (["-R", "-c", "import sys; print(sys.flags.hash_randomization)"], "1"),
        (["-B", "-c", "import sys; print(sys.dont_write_bytecode)"], "True"),
        (["-u", "-c", "print('unbuffered')"], "unbuffered"),
        (["-d", "-c", "import sys; print(sys.flags.debug)"], "1"),
        (["-cprint('attached')"], "attached"),
        (["-W", "error", "-c", "import sys; print(sys.warnoptions)"], "['error']"),
        (["-"], ""),
    ],
    ids=lambda value: value if isinstance(value, str) else " ".join(value)[:20],
)
def test_interpreter_options_run_cold(
    engine: NsJail, pool: JailPool, events: Events, py_args: list[str], shows: str
) -> None:
    result = engine.python3(py_args)
    assert (result.stdout.strip(), result.returncode) == (shows, 0), result
    assert events.count("hit") == events.count("miss") == 0
    assert "--pass_fd" not in result.args
    assert pool.ready_count() == 2


def test_a_script_that_is_not_one_of_the_files_runs_cold(
    engine: NsJail, pool: JailPool, events: Events
) -> None:
    result = engine.python3(["missing.py"])
    assert result.returncode == 2
    assert "can't open file '/home/missing.py'" in result.stdout
    assert events.count("hit") == 0


def test_a_zip_application_runs_cold(engine: NsJail, pool: JailPool, events: Events) -> None:
    import io
    import zipfile

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("__main__.py", "print('from the zip')")
    result = engine.python3(["app.py"], files=[FileAttachment("app.py", archive.getvalue())])
    assert (result.stdout, result.returncode) == ("from the zip\n", 0)
    assert events.count("hit") == 0


@pytest.mark.parametrize(
    "limits",
    [EvalLimits(memory=200 * 1024 * 1024), EvalLimits(pids=40), EvalLimits(time=0)],
    ids=["more memory", "more pids", "no time limit"],
)
def test_runs_that_raise_a_jails_limits_run_cold(
    engine: NsJail, pool: JailPool, events: Events, limits: EvalLimits
) -> None:
    result = engine.python3(["-c", "print('cold')"], limits=limits)
    assert (result.stdout, result.returncode) == ("cold\n", 0)
    assert events.count("hit") == 0


def test_lower_limits_are_set_at_the_hand_over(
    engine: NsJail, pool: JailPool, events: Events
) -> None:
    small = EvalLimits(memory=32 * 1024 * 1024, pids=4)
    grow = "x = bytearray(48 * 1024 * 1024); x[::4096] = b'1' * len(x[::4096])"
    assert engine.python3(["-c", grow], limits=small).status == "out_of_memory"
    fork = "import os\nfor _ in range(6):\n    os.fork()\nprint('forked')"
    assert engine.python3(["-c", fork], limits=small).status == "pids_limit"
    assert events.count("hit") == 2


def test_a_jail_that_died_while_waiting_is_retired_and_the_run_goes_cold(
    engine: NsJail, pool: JailPool, events: Events
) -> None:
    for jail in pool.jails():
        os.kill(jail.process.pid, signal.SIGKILL)
        jail.process.wait()
    result = engine.python3(["-c", "print('still answered')"])
    assert (result.stdout, result.returncode) == ("still answered\n", 0)
    assert events.count("miss") == 1 and events.count("hit") == 0
    assert pool.wait_full(POOL_READY_TIMEOUT)
    assert events.count("retire") == 2


def test_a_jail_whose_interpreter_died_gives_no_receipt_and_the_run_goes_cold(
    engine: NsJail, pool: JailPool, events: Events
) -> None:
    # NsJail is still there for a moment, so the jail may look alive when it is taken.
    for jail in pool.jails():
        jail.sandbox.cgroup.kill()
    result = engine.python3(["-c", "print('still answered')"])
    assert (result.stdout, result.returncode) == ("still answered\n", 0)
    assert events.count("hit") == 0
    assert events.count("miss") == 1


def test_waiting_jails_are_retired_at_their_idle_age(engine: NsJail, events: Events) -> None:
    pool = engine.start_pool(PoolSettings({DEFAULT: 1}, idle_age=1.0), events)
    try:
        assert pool.wait_full(POOL_READY_TIMEOUT)
        [first] = pool.jails()
        time.sleep(2.5)
        assert pool.wait_full(POOL_READY_TIMEOUT)
        assert first.process.poll() is not None
        assert events.count("retire") >= 1
        assert events.count("refill") >= 2
    finally:
        pool.close()
        engine.pool = None
    assert leftovers(engine) == {}


def test_closing_the_pool_ends_every_waiting_jail(engine: NsJail, events: Events) -> None:
    pool = engine.start_pool(PoolSettings({DEFAULT: 3}, idle_age=600), events)
    assert pool.wait_full(POOL_READY_TIMEOUT)
    jails = pool.jails()
    pool.close()
    engine.pool = None
    assert all(jail.process.poll() is not None for jail in jails)
    assert leftovers(engine) == {}
    assert events.count("retire") == 3


def test_the_time_limit_counts_from_the_hand_over(
    engine: NsJail, pool: JailPool, events: Events
) -> None:
    time.sleep(2.5)  # the waiting jails are now older than the run's whole limit
    result = engine.python3(
        ["-c", "import time; time.sleep(1); print('done')"], limits=EvalLimits(time=2)
    )
    assert (result.stdout, result.returncode, result.status) == ("done\n", 0, "ok")
    result = engine.python3(["-c", "while True: pass"], limits=EvalLimits(time=1))
    assert (result.returncode, result.status) == (137, "timed_out")
    assert 0.9 < result.duration < 3
    assert events.count("hit") == 2


INSIDE = textwrap.dedent(
    """
    import json, os, sys
    fds = []
    for fd in range(1024):
        try:
            os.fstat(fd)
        except OSError:
            continue
        fds.append(fd)
    print(json.dumps({
        "fds": fds,
        "env": dict(os.environ),
        "modules": sorted(sys.modules),
        "argv": sys.argv,
        "orig_argv": sys.orig_argv,
        "path0": sys.path[0],
        "main": sorted(globals()),
    }))
    """
)


@pytest.mark.parametrize("form", ["-c", "script", "-m"])
def test_nothing_of_the_launcher_reaches_the_program(
    engine: NsJail, pool: JailPool, events: Events, form: str
) -> None:
    files = [FileAttachment("probe.py", INSIDE.encode())]
    py_args = {"-c": ["-c", INSIDE, "x"], "script": ["probe.py", "x"], "-m": ["-m", "probe", "x"]}
    pooled = json.loads(engine.python3(py_args[form], files=files).stdout)
    assert events.count("hit") == 1
    cold = json.loads(NsJail().python3(py_args[form], files=files).stdout)
    assert pooled["fds"] == [0, 1, 2]
    assert pooled == cold


def test_a_traceback_shows_no_frame_of_the_launcher(engine: NsJail, pool: JailPool) -> None:
    result = engine.python3(["-c", "def f():\n    1/0\nf()"])
    text = plain(result.stdout)
    assert result.returncode == 1
    assert text.count('File "<string>"') == 2, text
    assert "_snekbox_pool_launch" not in text and "launcher" not in text


PARITY_PROGRAMS = {
    "traceback": (["-c", "def f():\n    1/0\nf()"], ()),
    "syntax error": (["-c", "1 +"], ()),
    "exit message": (["-c", "import sys; sys.exit('bye')"], ()),
    "keyboard interrupt": (["-c", "raise KeyboardInterrupt"], ()),
    "atexit and threads": (
        [
            "-c",
            "import atexit, threading, time\natexit.register(print, 'atexit')\n"
            "threading.Thread(target=lambda: (time.sleep(0.2), print('thread'))).start()\n"
            "print('main')",
        ],
        (),
    ),
    "input at eof": (["-c", "input()"], ()),
    "script traceback": (["main.py"], (FileAttachment("main.py", b"def g():\n    1/0\ng()\n"),)),
    "missing module": (["-m", "no_such_module"], ()),
    "timeit": (
        ["-m", "timeit", "-n", "1", "-r", "1", "-s", "import math\nx = 2", "math.sqrt(x)"],
        (),
    ),
}


@pytest.fixture(scope="module")
def every_interpreter_pool(engine: NsJail, interpreters: list[str]) -> Iterator[JailPool]:
    """One waiting jail per provisioned interpreter."""
    started = engine.start_pool(PoolSettings(dict.fromkeys(interpreters, 1), idle_age=600))
    yield started
    started.close()
    engine.pool = None


@pytest.fixture(scope="module")
def interpreters() -> list[str]:
    return provisioned_interpreters()


@pytest.mark.parametrize("program", PARITY_PROGRAMS, ids=list(PARITY_PROGRAMS))
def test_a_pooled_run_answers_as_a_cold_one_on_every_interpreter(
    engine: NsJail, every_interpreter_pool: JailPool, interpreters: list[str], program: str
) -> None:
    py_args, files = PARITY_PROGRAMS[program]
    cold_engine = NsJail()
    for executable in interpreters:
        assert every_interpreter_pool.wait_full(POOL_READY_TIMEOUT, executable)
        pooled = engine.python3(py_args, files=files, executable_path=executable)
        cold = cold_engine.python3(py_args, files=files, executable_path=executable)
        timing = re.compile(r"[\d.]+ (n|u|m)?sec per loop")
        assert (timing.sub("T", pooled.stdout), pooled.returncode) == (
            timing.sub("T", cold.stdout),
            cold.returncode,
        ), executable
        assert "--pass_fd" in pooled.args and "--pass_fd" not in cold.args
