"""Ownership is decided by locks that only live processes hold, never by pids."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from snekbox import ownership
from snekbox.limits import cgroup

OWNER_PROCESS = """
import sys, time
from pathlib import Path
from snekbox import ownership
owner = ownership.Owner.create(Path(sys.argv[1]))
owner.record("memfs", "/somewhere/memfs")
owner.record("cgroup", "/somewhere/cgroup")
owner.record("memfs", "/somewhere/memfs")
print(owner.name, flush=True)
time.sleep(60)
"""


def start_owner(directory: Path) -> tuple[subprocess.Popen[str], str]:
    """A process that becomes an owner in `directory`; returns it and the owner's name."""
    process = subprocess.Popen(
        [sys.executable, "-c", OWNER_PROCESS, str(directory)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def dead_names(directory: Path) -> dict[str, list[tuple[str, str]]]:
    """The dead owners in `directory` and their places (their files are left in place)."""
    found = {}
    for dead in ownership.dead_owners(directory):
        found[dead.name] = dead.places
        dead.release()
    return found


def test_a_live_owner_is_never_taken_for_dead(tmp_path: Path) -> None:
    process, name = start_owner(tmp_path)
    try:
        assert name.startswith(f"{process.pid}-")
        assert dead_names(tmp_path) == {}
    finally:
        process.kill()
        process.wait()


def test_a_killed_owner_is_dead_while_still_a_zombie(tmp_path: Path) -> None:
    process, name = start_owner(tmp_path)
    os.kill(process.pid, signal.SIGKILL)
    while Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.01)
    try:
        # The pid still exists (unreaped), yet the owner is known to be gone.
        assert dead_names(tmp_path) == {
            name: [("memfs", "/somewhere/memfs"), ("cgroup", "/somewhere/cgroup")]
        }
    finally:
        process.wait()


def test_a_forgotten_owner_is_gone_and_a_second_sweeper_skips_a_locked_one(
    tmp_path: Path,
) -> None:
    process, name = start_owner(tmp_path)
    process.kill()
    process.wait()
    [first] = ownership.dead_owners(tmp_path)
    assert first.name == name
    assert list(ownership.dead_owners(tmp_path)) == []  # the first sweeper holds it
    first.forget()
    assert list(tmp_path.iterdir()) == []


def test_each_process_is_its_own_owner_and_a_fork_does_not_inherit_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ownership.OWNERS_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(ownership, "_current", None)  # this session's own owner comes back after
    owner = ownership.current_owner()
    assert ownership.current_owner() is owner
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a new owner, and the parent's lock is not kept alive by it
        child = ownership.current_owner()
        os.write(write, child.name.encode())
        os._exit(0)
    os.close(write)
    child_name = os.read(read, 100).decode()
    os.waitpid(pid, 0)
    assert child_name != owner.name
    assert set(dead_names(tmp_path)) == {child_name}


HOLDER_PROCESS = """
import sys, time
from snekbox import ownership
print(ownership.make_owned_tempdir("snekbox-test-held-"), flush=True)
time.sleep(60)
"""


def test_temp_directories_of_dead_holders_are_removed_and_live_ones_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    holders = [
        subprocess.Popen(
            [sys.executable, "-c", HOLDER_PROCESS],
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ, TMPDIR=str(tmp_path)),
        )
        for _ in range(2)
    ]
    live, dead = (Path(h.stdout.readline().strip()) for h in holders)  # type: ignore[union-attr]
    holders[1].kill()
    holders[1].wait()
    never_held = Path(tempfile.mkdtemp(prefix="snekbox-test-held-"))  # e.g. an older server's
    try:
        removed = ownership.remove_dead_tempdirs("snekbox-test-held-")
        assert sorted(removed) == sorted([dead, never_held])
        assert live.is_dir() and not dead.exists() and not never_held.exists()
    finally:
        holders[0].kill()
        holders[0].wait()


def test_start_up_leaves_owner_named_run_cgroups_to_the_owner_sweep(tmp_path: Path) -> None:
    setup = cgroup.CgroupSetup(1, tmp_path, tmp_path)
    owned = tmp_path / "run-123-456-abcdef012345"
    legacy_dead = tmp_path / "run-999999999-abcdef012345"  # an older server's, pid gone
    for path in (owned, legacy_dead):
        path.mkdir()
    assert cgroup.remove_leftovers(setup) == 1
    assert owned.is_dir() and not legacy_dead.exists()


def test_a_process_that_exits_between_runs_removes_its_own_file(tmp_path: Path) -> None:
    code = "import sys; from snekbox import ownership; ownership.current_owner()"
    env = dict(os.environ, **{ownership.OWNERS_DIR_ENV: str(tmp_path)})
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    assert list(tmp_path.iterdir()) == []
