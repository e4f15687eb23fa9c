"""What the engine checks and reads when it is made, and how it shapes argv."""

from __future__ import annotations

from pathlib import Path

import pytest

from snekbox.nsjail import (
    _drop_leading_empty,
    read_config,
)


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
