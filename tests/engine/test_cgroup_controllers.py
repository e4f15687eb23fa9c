"""Every cgroup controller a config names works: runs succeed with cpu and net_cls limits too."""

from __future__ import annotations

from pathlib import Path

import pytest

from snekbox.limits import cgroup
from snekbox.nsjail import NsJail

BASE_CONFIG = Path("config/snekbox.cfg").read_text()

CONTROLLER_OPTIONS = {
    "cpu": "cgroup_cpu_ms_per_sec: 800\n",
    "cpu with mount and parent": (
        'cgroup_cpu_ms_per_sec: 800\ncgroup_cpu_mount: "/sys/fs/cgroup/cpu"\n'
        'cgroup_cpu_parent: "NSJAIL"\n'
    ),
    "net_cls": "cgroup_net_cls_classid: 1048577\n",
    "net_cls with mount and parent": (
        'cgroup_net_cls_classid: 1048577\ncgroup_net_cls_mount: "/sys/fs/cgroup/net_cls"\n'
        'cgroup_net_cls_parent: "NSJAIL"\n'
    ),
    "memsw instead of swap": "cgroup_mem_memsw_max: 73400320\n",
}


def config_with(tmp_path: Path, options: str) -> str:
    lines = BASE_CONFIG.splitlines()
    if "memsw" in options:
        lines = [line for line in lines if not line.startswith("cgroup_mem_swap_max")]
    path = tmp_path / "snekbox.cfg"
    path.write_text("\n".join(lines) + "\n" + options)
    return str(path)


@pytest.mark.parametrize("options", CONTROLLER_OPTIONS.values(), ids=CONTROLLER_OPTIONS.keys())
def test_a_config_naming_a_controller_runs_code(tmp_path: Path, options: str) -> None:
    nsjail = NsJail(config_path=config_with(tmp_path, options))
    result = nsjail.python3(["-c", "print('ran')"])
    assert (result.returncode, result.stdout) == (0, "ran\n")


def test_the_cpu_limit_is_applied(tmp_path: Path) -> None:
    nsjail = NsJail(config_path=config_with(tmp_path, "cgroup_cpu_ms_per_sec: 100\n"))
    code = "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 1: pass\n"
    code += "print(round(time.process_time(), 1))"
    result = nsjail.python3(["-c", code])
    assert result.returncode == 0, result.stdout
    assert float(result.stdout) <= 0.4  # 100 ms of CPU per second of wall time


def test_cpu_and_net_cls_parents_are_prepared(tmp_path: Path) -> None:
    options = CONTROLLER_OPTIONS["cpu"] + CONTROLLER_OPTIONS["net_cls"]
    nsjail = NsJail(config_path=config_with(tmp_path, options))
    if cgroup.detect_version() == 2:  # NsJail nests its cpu cgroup in the run's v2 cgroup
        assert nsjail.cgroups.other_parents == ()
        return
    assert set(nsjail.cgroups.other_parents) == {
        Path("/sys/fs/cgroup/cpu/NSJAIL"),
        Path("/sys/fs/cgroup/net_cls/NSJAIL"),
    }
    assert all(parent.is_dir() for parent in nsjail.cgroups.other_parents)
