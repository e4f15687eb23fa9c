"""The pre-started jails' settings from the environment, and the memory they are given."""

from __future__ import annotations

from pathlib import Path

import pytest

from snekbox.jail_config import DEFAULT_EXECUTABLE_PATH
from snekbox.pool import PoolSettings
from snekbox.services.footprint import RunFootprint, default_max_concurrent_runs
from snekbox.services.pool_settings import fit_pool, pool_from_env, server_processes

MiB = 1024**2
ROOT = "/snekbin/python"


def test_by_default_two_jails_wait_for_each_name_of_the_default_interpreter(
    tmp_path: Path,
) -> None:
    (tmp_path / "3.13").mkdir()
    (tmp_path / "default").symlink_to("3.13")
    pool = pool_from_env({}, str(tmp_path), 30)
    versioned = f"{tmp_path}/3.13/bin/python"
    assert pool == PoolSettings({DEFAULT_EXECUTABLE_PATH: 2, versioned: 2}, 60.0, 30)
    assert pool_from_env({"SNEKBOX_POOL_SIZE": "1"}, str(tmp_path), 30) == PoolSettings(
        {DEFAULT_EXECUTABLE_PATH: 1, versioned: 1}, 60.0, 30
    )


def test_without_a_default_link_only_the_default_name_gets_jails(tmp_path: Path) -> None:
    assert pool_from_env({}, str(tmp_path), 30) == PoolSettings({DEFAULT_EXECUTABLE_PATH: 2})


@pytest.mark.parametrize("value", ["off", "0", "false", "No"])
def test_the_switch_turns_it_off(value: str) -> None:
    assert pool_from_env({"SNEKBOX_POOL": value}, ROOT, 30) is None


def test_sizes_per_interpreter_name_the_executable_a_request_names() -> None:
    env = {"SNEKBOX_POOL_SIZE": "default=3, 3.12=1,3.11=0", "SNEKBOX_POOL_IDLE_AGE": "15"}
    pool = pool_from_env(env, ROOT, 20)
    assert pool == PoolSettings(
        {DEFAULT_EXECUTABLE_PATH: 3, "/snekbin/python/3.12/bin/python": 1}, 15.0, 20
    )


def test_a_size_of_zero_is_no_pool() -> None:
    assert pool_from_env({"SNEKBOX_POOL_SIZE": "0"}, ROOT, 30) is None
    assert pool_from_env({"SNEKBOX_POOL_SIZE": "default=0"}, ROOT, 30) is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SNEKBOX_POOL", "sometimes"),
        ("SNEKBOX_POOL_SIZE", "two"),
        ("SNEKBOX_POOL_SIZE", "../x=1"),
        ("SNEKBOX_POOL_SIZE", "=1"),
        ("SNEKBOX_POOL_IDLE_AGE", "-5"),
    ],
)
def test_a_bad_value_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        pool_from_env({name: value}, ROOT, 30)


def test_server_processes_come_from_the_gunicorn_config() -> None:
    assert server_processes({}) == 1
    assert server_processes({"SNEKBOX_WORKERS": "2"}) == 2


def test_the_default_slot_count_leaves_memory_for_the_waiting_jails() -> None:
    footprint = RunFootprint(70 * MiB, 88 * MiB)  # 158 MiB a run
    memory = 10 * footprint.default_run
    assert default_max_concurrent_runs(footprint, memory) == 10
    assert default_max_concurrent_runs(footprint, memory, reserved=4) == 6
    assert default_max_concurrent_runs(footprint, memory, reserved=40) == 1


def test_a_pool_that_does_not_fit_shrinks_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    pool = PoolSettings({DEFAULT_EXECUTABLE_PATH: 2, "/x/3.12/bin/python": 2})
    assert fit_pool(pool, room=8, processes=2) is pool
    shrunk = fit_pool(pool, room=6, processes=2)
    assert shrunk == PoolSettings({DEFAULT_EXECUTABLE_PATH: 2, "/x/3.12/bin/python": 1})
    assert "waiting jail(s) per process" in caplog.text
    assert fit_pool(pool, room=1, processes=2) is None
