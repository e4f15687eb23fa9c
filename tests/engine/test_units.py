"""Pure logic of the engine, without a jail: patterns, paths, arguments, log parsing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from snekbox.config_pb2 import NsJailConfig
from snekbox.limits import cgroup, swap
from snekbox.limits.run_cgroup import CgroupStats, RunCgroup, RunLimits
from snekbox.limits.table import EvalLimits, merge, parse_nsjail_options
from snekbox.limits.timed import time_limit
from snekbox.nsjail import (
    _drop_leading_empty,
    decide_status,
    read_config,
)
from snekbox.snekio.collect import compile_pattern


@pytest.mark.parametrize(
    ("path", "matches"),
    [
        ("a.txt", True),
        ("dir/a.txt", True),
        ("dir/sub/a.txt", True),
        ("_a.txt", False),
        ("dir/_a.txt", False),
        ("_dir/a.txt", True),
    ],
)
def test_default_pattern(path: str, matches: bool) -> None:
    assert bool(compile_pattern("**/[!_]*").fullmatch(path)) is matches


def test_pattern_star_does_not_cross_directories() -> None:
    assert compile_pattern("*.py").fullmatch("a.py")
    assert not compile_pattern("*.py").fullmatch("dir/a.py")


def test_leading_empty_args_dropped() -> None:
    assert list(_drop_leading_empty(["", "", "-c", "", "x"])) == ["-c", "", "x"]
    assert list(_drop_leading_empty(["", ""])) == []


def test_config_defaults_users_rely_on() -> None:
    config = read_config("config/snekbox.cfg")
    assert config.mode == 1  # ONCE
    assert config.hostname == "snekbox"
    assert config.cwd == "/home"
    assert config.time_limit == 6
    assert config.cgroup_mem_max == 73400320
    assert config.cgroup_mem_swap_max == 0
    assert config.cgroup_pids_max == 15
    assert config.rlimit_as == 700
    assert config.iface_no_lo is True
    assert config.mount_proc is False
    assert config.keep_env is False
    assert not config.cap
    assert "LANG=en_US.UTF-8" in config.envar
    assert "PYTHONUSERBASE=/snekbox/user_base" in config.envar
    shm = [m for m in config.mount if m.dst == "/dev/shm"]
    assert shm[0].fstype == "tmpfs" and shm[0].options == "size=40m"
    assert all(not m.rw for m in config.mount if m.is_bind and m.dst != "/dev/null")


def test_time_limit_raises_after_deadline() -> None:
    with pytest.raises(TimeoutError, match="too slow"), time_limit(0.01, "too slow") as deadline:
        time.sleep(0.02)
        deadline.check()


def fake_v2_root(tmp_path: Path, controllers: str = "cpu memory pids") -> Path:
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text(controllers)
    (root / "cgroup.subtree_control").write_text("")
    (root / "cgroup.procs").write_text("")
    return root


def test_cgroup_version_detection(tmp_path: Path) -> None:
    assert cgroup.detect_version(tmp_path) == 1
    assert cgroup.detect_version(fake_v2_root(tmp_path)) == 2


def test_cgroup_v2_parent_is_prepared(tmp_path: Path) -> None:
    root = fake_v2_root(tmp_path)
    config = NsJailConfig(cgroupv2_mount=str(root))
    setup = cgroup.init(config, root)
    assert setup.version == 2
    assert setup.memory_parent == root / "snekbox"
    # cpu is enabled too where the host offers it, for configs with cgroup_cpu_ms_per_sec.
    assert (root / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    assert (root / "snekbox" / "cgroup.subtree_control").read_text() == "+memory +pids"


def test_cgroup_v2_run_cgroup_binds_the_limits(tmp_path: Path) -> None:
    root = fake_v2_root(tmp_path)
    setup = cgroup.init(NsJailConfig(cgroupv2_mount=str(root)), root)
    run = RunCgroup(setup, RunLimits(memory=1000, swap=0, pids=5))
    args = run.create()
    assert args[-3:] == ["--use_cgroupv2", "--cgroupv2_mount", str(run.memory)]
    assert args[args.index("--cgroup_mem_max") + 1] == str(1000 + 1024 * 1024)
    assert args[args.index("--cgroup_pids_max") + 1] == "6"
    assert (run.memory / "memory.max").read_text() == "1000"
    assert (run.memory / "pids.max").read_text() == "5"
    assert (run.memory / "cgroup.subtree_control").read_text() == "+memory +pids"


def test_cgroup_v2_run_cgroup_enables_cpu_when_offered(tmp_path: Path) -> None:
    root = fake_v2_root(tmp_path)
    setup = cgroup.init(NsJailConfig(cgroupv2_mount=str(root)), root)
    run = RunCgroup(setup, RunLimits(memory=1000, swap=0, pids=5))
    run.memory.mkdir(parents=True)
    (run.memory / "cgroup.controllers").write_text("cpu memory pids")
    run._apply_limits()
    assert (run.memory / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"


def test_cgroup_v2_without_memory_controller_fails_clearly(tmp_path: Path) -> None:
    root = fake_v2_root(tmp_path, controllers="cpu pids")
    with pytest.raises(OSError, match="lacks the memory controller"):
        cgroup.init(NsJailConfig(cgroupv2_mount=str(root)), root)


def test_swap_limit_enforceability_is_detected(tmp_path: Path) -> None:
    setup = cgroup.CgroupSetup(1, tmp_path, tmp_path)
    config = NsJailConfig(cgroup_mem_swap_max=0)
    assert swap.warn_if_unenforceable(config, setup) is False
    (tmp_path / "memory.memsw.limit_in_bytes").write_text("0")
    assert swap.warn_if_unenforceable(config, setup) is True


@pytest.mark.parametrize(
    ("returncode", "truncated", "log", "stats", "status"),
    [
        (None, False, [], CgroupStats(None, 0, 0), "failed"),
        (143, True, [], CgroupStats(None, 0, 0), "output_limit"),
        (0, False, [], CgroupStats(None, 1, 0), "ok"),
        (137, False, ["pid=3 run time >= time limit (6 >= 6)"], CgroupStats(1, 0, 0), "timed_out"),
        (137, False, [], CgroupStats(70 << 20, 1, 0), "out_of_memory"),
        (137, False, [], CgroupStats(70 << 20, 0, 0, memory_limit_reached=True), "out_of_memory"),
        (1, False, [], CgroupStats(70 << 20, 0, 0, memory_limit_reached=True), "error"),
        (1, False, [], CgroupStats(1, 0, 3), "pids_limit"),
        (1, False, [], CgroupStats(1, 0, 0, pids_limit_reached=True), "pids_limit"),
        (139, False, [], CgroupStats(1, 0, 0), "signaled"),
        (255, False, [], CgroupStats(1, 0, 0), "error"),
        (2, False, [], CgroupStats(1, 0, 0), "error"),
    ],
)
def test_status_is_decided_from_facts(returncode, truncated, log, stats, status) -> None:
    assert decide_status(returncode, truncated, log, stats) == status


def test_limit_options_are_taken_out_of_nsjail_args() -> None:
    found, swap, rest = parse_nsjail_options(
        ["--time_limit", "2", "--cgroup_mem_max=1000", "-v", "--cgroup_pids_max", "5", "-t", "3",
         "--cgroup_mem_swap_max", "0"]
    )  # fmt: skip
    assert found == EvalLimits(time=3, memory=1000, pids=5)
    assert (swap, rest) == (0, ["-v"])


def test_limits_merge_over_defaults_in_order() -> None:
    defaults = EvalLimits(time=6, memory=70, pids=15, output_size=100)
    merged = merge(defaults, EvalLimits(time=2, memory=80), None, EvalLimits(time=3))
    assert merged == EvalLimits(time=3, memory=80, pids=15, output_size=100)


def test_missing_nsjail_binary_is_a_clear_startup_error(tmp_path: Path) -> None:
    from snekbox.nsjail import NsJail, NsJailNotFoundError

    with pytest.raises(NsJailNotFoundError, match="does not exist or is not executable"):
        NsJail(nsjail_path=str(tmp_path / "nsjail"))


def test_configured_nsjail_binary_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from snekbox.nsjail import locate_nsjail

    monkeypatch.setenv("SNEKBOX_NSJAIL_PATH", "/usr/sbin/nsjail")
    assert locate_nsjail() == "/usr/sbin/nsjail"


def test_missing_memfs_root_is_a_clear_startup_error(tmp_path: Path) -> None:
    from snekbox.nsjail import NsJail

    with pytest.raises(FileNotFoundError, match="memfs root"):
        NsJail(memfs_root=tmp_path / "missing")
