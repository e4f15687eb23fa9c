"""cgroup v2 preparation and run cgroups, on a fake cgroup tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from snekbox.config_pb2 import NsJailConfig
from snekbox.limits import cgroup, swap
from snekbox.limits.run_cgroup import RunCgroup, RunLimits


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
