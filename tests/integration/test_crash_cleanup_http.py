"""Nothing outlives its owner: killed workers, a killed server, orphaned workers, lost cgroups.

Each test kills part of a real Gunicorn in the middle of a real run (40 MiB written to the
run's tmpfs home, then a long sleep) and then checks, in the server's own places only (see
`private_host`), that the run's mount, cgroups and processes are gone within a deadline.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.private_host import (
    MiB,
    PrivateHost,
    children,
    is_alive,
    parent_pid,
    pids_in,
    private_host,
    wait_for,
)
from tests.support.server import Server, free_port, running_server

pytestmark = pytest.mark.integration

log = logging.getLogger(__name__)

HOME_FILE_SIZE = 40 * MiB
RUN_SECONDS = 20
# Correctness deadlines, with generous margins for a busy shared host.
CLEANUP_DEADLINE = 10.0
PORT_DEADLINE = 5.0
ORPHAN_RUN_DEADLINE = 15.0

LONG_RUN = {
    "input": (
        "import time\n"
        "with open('ballast', 'wb') as f:\n"
        f"    for _ in range({HOME_FILE_SIZE // MiB}):\n"
        f"        f.write(b'x' * {MiB})\n"
        f"time.sleep({RUN_SECONDS})\n"
    ),
    "limits": {"time": RUN_SECONDS + 5},
}


@pytest.fixture
def host() -> Iterator[PrivateHost]:
    with private_host() as host:
        yield host


@dataclass
class RunInProgress:
    """A long run a server is busy with, and what its worker (or its whole server) holds.

    A worker holds its runs and its pre-started jails: a mount below ``<memfs>/<owner>/``, run
    cgroups named ``run-<owner>-*`` and their processes. ``owners`` are the workers whose
    holdings must go: the run's worker, or every worker when the whole server is killed.
    """

    mount: Path
    nsjail_pid: int
    worker_pid: int
    owners: set[str]
    pids: set[int]


def start_long_run(server: Server, host: PrivateHost) -> RunInProgress:
    """POST the long run from a thread; return once its home holds the whole file."""

    def post() -> None:
        try:
            server.post_eval(LONG_RUN, timeout=RUN_SECONDS + 20)
        except OSError:
            pass  # the worker answering it is about to be killed

    threading.Thread(target=post, daemon=True).start()

    def file_written() -> bool:
        return any(
            (Path(m) / "home" / "ballast").exists()
            and (Path(m) / "home" / "ballast").stat().st_size == HOME_FILE_SIZE
            for m in host.mounts()
        )

    if wait_for(file_written, 30) is None:
        pytest.fail(f"The long run did not start:\n{server.log()}")
    [mount] = [Path(m) for m in host.mounts() if (Path(m) / "home" / "ballast").exists()]
    [nsjail_pid] = [pid for pid in host.nsjail_pids() if f"{mount}/home:".encode() in cmdline(pid)]
    run = RunInProgress(mount, nsjail_pid, parent_pid(nsjail_pid), {mount.parent.name}, set())
    run.pids = holdings(host, run.owners)["processes"]
    assert len(run.pids) > 1, "the run's jail is in no cgroup of the server"
    return run


def every_owner(host: PrivateHost) -> set[str]:
    """Every worker that holds a mount here now."""
    return {Path(mount).parent.name for mount in host.mounts()}


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def holdings(host: PrivateHost, owners: set[str]) -> dict[str, set[Any]]:
    """The mounts, run cgroups and live sandbox processes (NsJail and jailed) of ``owners``."""
    mounts = {m for m in host.mounts() if Path(m).parent.name in owners}
    cgroups = {
        run
        for run in host.run_cgroups()
        if any(run.name.startswith(f"run-{owner}-") for owner in owners)
    }
    marks = [f"{host.memfs_root}/{owner}/".encode() for owner in owners]
    nsjails = {pid for pid in host.nsjail_pids() if any(m in cmdline(pid) for m in marks)}
    jailed = {pid for run in cgroups for pid in pids_in(run)}
    return {"mounts": mounts, "cgroups": cgroups, "processes": nsjails | jailed}


def leftovers(host: PrivateHost, run: RunInProgress) -> dict[str, object]:
    """What is left of the run's owners on the host (empty when nothing is)."""
    found = holdings(host, run.owners)
    found["processes"] = {pid for pid in found["processes"] | run.pids if is_alive(pid)}
    return {key: sorted(value) for key, value in found.items() if value}


def wait_until_gone(host: PrivateHost, run: RunInProgress, deadline: float) -> float:
    """Seconds until nothing of `run` was left; fails with what is left after `deadline`."""
    elapsed = wait_for(lambda: not leftovers(host, run), deadline)
    assert elapsed is not None, f"left after {deadline:g} s: {leftovers(host, run)}"
    return elapsed


# How the original snekbox's deployments configure Gunicorn: sync workers and no hooks, so the
# engine itself must sweep (each respawned worker's NsJail does).
ORIGINAL_STYLE_CONFIG = """
workers = 2
bind = "0.0.0.0:8060"
logger_class = "snekbox.utils.gunicorn.GunicornLogger"
wsgi_app = "snekbox:SnekAPI()"
"""


@pytest.mark.parametrize("config", ["ours", "original_style"])
def test_a_killed_workers_run_leaves_no_mount_cgroup_or_process(
    tmp_path: Path, host: PrivateHost, config: str
) -> None:
    options: dict[str, Any] = {"app": host.app, **host.env}
    if config == "original_style":
        options["config"] = tmp_path / "gunicorn.conf.py"
        options["config"].write_text(ORIGINAL_STYLE_CONFIG)
    with running_server(tmp_path / "server.log", **options) as server:
        run = start_long_run(server, host)
        os.kill(run.worker_pid, signal.SIGKILL)
        elapsed = wait_until_gone(host, run, CLEANUP_DEADLINE)
        log.info("A killed worker's run was gone %.2f s after the kill (%s).", elapsed, config)
        # The respawned worker serves, and its runs start clean.
        answer = server.post_eval({"input": "print('after')"}).json
        assert (answer["stdout"], answer["returncode"]) == ("after\n", 0)


def test_a_restart_after_the_whole_server_was_killed_ends_the_orphaned_run(
    tmp_path: Path, host: PrivateHost
) -> None:
    with running_server(tmp_path / "first.log", app=host.app, **host.env) as first:
        run = start_long_run(first, host)
        run.owners = every_owner(host)  # both workers die, with their waiting jails
        run.pids |= holdings(host, run.owners)["processes"]
        crashed_dirs = host.temp_dirs("snekbox-slots-") + host.temp_dirs("snekbox-metrics-")
        assert len(crashed_dirs) == 2, crashed_dirs
        os.killpg(first.process.pid, signal.SIGKILL)  # master and workers, not the runs
        first.process.wait(10)
    assert run.nsjail_pid in host.nsjail_pids(), "the run must survive its server"
    restarted = time.monotonic()
    with running_server(tmp_path / "second.log", app=host.app, **host.env) as second:
        wait_until_gone(host, run, CLEANUP_DEADLINE)
        elapsed = time.monotonic() - restarted
        log.info("A crashed server's run was gone %.2f s after the restart began.", elapsed)
        left = [d for d in crashed_dirs if d.exists()]
        assert left == [], f"a crashed master's directories stayed: {left}"
        assert len(host.temp_dirs("snekbox-slots-")) == 1
        answer = second.post_eval({"input": "print('after')"}).json
        assert (answer["stdout"], answer["returncode"]) == ("after\n", 0)


def can_bind(port: int) -> bool:
    """Whether a new server could listen on `port` now (Gunicorn sets SO_REUSEADDR too)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen()
        except OSError:
            return False
        return True


def test_workers_orphaned_by_a_dead_master_free_the_port_and_end_their_runs(
    tmp_path: Path, host: PrivateHost
) -> None:
    port = free_port()
    with running_server(tmp_path / "first.log", port=port, app=host.app, **host.env) as first:
        master = first.process.pid
        run = start_long_run(first, host)
        run.owners = every_owner(host)
        run.pids |= holdings(host, run.owners)["processes"]
        orphans = children(master)
        assert len(orphans) == 2, orphans
        try:
            os.kill(master, signal.SIGKILL)
            first.process.wait(10)
            killed = time.monotonic()
            freed = wait_for(lambda: can_bind(port), PORT_DEADLINE)
            assert freed is not None, f"the orphans still hold port {port} after {PORT_DEADLINE} s"
            log.info("Orphaned workers freed the port %.2f s after their master died.", freed)
            with running_server(
                tmp_path / "second.log", port=port, app=host.app, **host.env
            ) as second:
                answer = second.post_eval({"input": "print('new server')"}).json
                assert answer["stdout"] == "new server\n"
                remaining = ORPHAN_RUN_DEADLINE - (time.monotonic() - killed)
                elapsed = wait_for(lambda: not any(is_alive(p) for p in run.pids), remaining)
                assert elapsed is not None, (
                    f"the orphans' run still runs {ORPHAN_RUN_DEADLINE} s after the master died"
                )
                ended = time.monotonic() - killed
                log.info("The orphans' run ended %.2f s after their master died.", ended)
                exited = wait_for(lambda: not any(is_alive(p) for p in orphans), 10)
                assert exited is not None, "the orphaned workers did not exit"
        finally:
            for pid in orphans:
                if is_alive(pid):
                    os.kill(pid, signal.SIGKILL)


def test_a_removed_cgroup_parent_and_memfs_root_are_recreated_and_health_recovers(
    tmp_path: Path, host: PrivateHost
) -> None:
    # An idle server with no pool holds nothing there; waiting jails would keep both busy.
    env = {**host.env, "SNEKBOX_POOL": "off"}
    with running_server(tmp_path / "server.log", app=host.app, **env) as server:
        assert server.request("GET", "/health").status == 200
        for parent in host.parents:
            parent.rmdir()  # empty between runs: every run removes its own cgroups
        host.memfs_root.rmdir()
        answer = server.post_eval({"input": "print('recreated')"}).json
        assert (answer["stdout"], answer["returncode"]) == ("recreated\n", 0), answer
        assert all(parent.is_dir() for parent in host.parents)
        assert host.memfs_root.is_dir()
        healthy = wait_for(lambda: server.request("GET", "/health").status == 200, 15, 0.5)
        assert healthy is not None, server.request("GET", "/health").body
