"""No mount, directory, cgroup or process outlives a run, however the run ended."""

from __future__ import annotations

import pytest

from snekbox import jail_process
from snekbox.nsjail import NsJail
from snekbox.snekio import FileAttachment
from tests.support.engine import leftovers

ENDINGS = {
    "normal": ("print(1)", ()),
    "error": ("raise SystemExit(3)", ()),
    "timeout": ("while True: pass", ()),
    "oom": ("x = bytearray(200 * 1024 * 1024)", ()),
    "output_cap": ("print('z' * 2_000_000)", ()),
    "bad_unicode": ("import os; os.write(1, b'\\xff' * 10)", ()),
    "orphans": (
        "import os, time\n"
        "for _ in range(5):\n"
        "    if os.fork() == 0:\n"
        "        os.setsid(); time.sleep(60)\n"
        "os._exit(0)",
        (),
    ),
    "bad_input_file": ("print(1)", (FileAttachment("d/f", b""), FileAttachment("d", b""))),
    "collection_error": ("open(b'\\xff', 'w')", ()),
}


# How each ending shows in the result, so each case is known to have ended the way it says.
STATUSES = {
    "normal": "ok",
    "error": "error",
    "timeout": "timed_out",
    "oom": "out_of_memory",
    "output_cap": "output_limit",
    "bad_unicode": "failed",
    "orphans": "ok",
    "bad_input_file": "failed",
    "collection_error": "failed",
}


@pytest.mark.parametrize("ending", ENDINGS, ids=list(ENDINGS))
def test_nothing_survives_a_run(nsjail: NsJail, ending: str) -> None:
    code, files = ENDINGS[ending]
    result = nsjail.python3(["-c", code], files=files)
    assert result.status == STATUSES[ending], result
    assert leftovers(nsjail) == {}


def test_nothing_survives_when_nsjail_itself_is_killed(
    nsjail: NsJail, no_leftovers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Make the host-side watchdog fire long before NsJail's own time limit.
    monkeypatch.setattr(jail_process, "WATCHDOG_GRACE", 2 - nsjail.config.time_limit)
    code = "import os, time\nfor _ in range(3):\n    os.fork()\ntime.sleep(30)"
    result = nsjail.python3(["-c", code])
    assert result.returncode == 137
    assert leftovers(nsjail) == {}


def test_a_failed_mount_leaves_no_directory(tmp_path, no_leftovers: None) -> None:
    from snekbox.snekio import MemFS

    # tmpfs rejects this size option, so the mount fails after the directory was made.
    with pytest.raises(OSError), MemFS("bogus", root_dir=tmp_path):  # type: ignore[arg-type]
        pass
    assert list(tmp_path.iterdir()) == []
