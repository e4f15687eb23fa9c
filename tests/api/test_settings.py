"""Server settings from the environment, and their host-sized defaults."""

from __future__ import annotations

import pytest

from snekbox.services.footprint import (
    MAX_DEFAULT_RUNS,
    RunFootprint,
    default_max_concurrent_runs,
)
from snekbox.services.settings import ApiSettings, default_max_body_size
from tests.support.api import NSJAIL_CONFIG

MiB = 1024**2
FOOTPRINT = RunFootprint.of(NSJAIL_CONFIG, 48 * MiB)


def test_defaults() -> None:
    settings = ApiSettings.from_env({})
    assert settings.max_concurrent_runs == default_max_concurrent_runs(FOOTPRINT)
    assert settings.max_body_size == default_max_body_size()
    assert settings.body_timeout > 0
    assert settings.slots_dir is None


def test_default_body_cap_fits_100_files_of_8_mib_in_base64() -> None:
    base64_files = 100 * (8 * MiB * 4 // 3 + 4)
    assert base64_files < default_max_body_size() < base64_files + 16 * MiB


@pytest.mark.parametrize(
    ("memory", "runs"),
    [
        (64 * MiB, 1),
        (FOOTPRINT.default_run * 3 + 1, 3),
        (2048 * MiB, 12),
        (1024**4, MAX_DEFAULT_RUNS),
    ],
)
def test_default_runs_follow_memory(memory: int, runs: int) -> None:
    assert default_max_concurrent_runs(FOOTPRINT, memory) == runs


def test_a_run_pins_its_memory_limit_its_home_and_its_shm() -> None:
    """70 MiB of cgroup_mem_max, the 48 MiB memfs and /dev/shm's size=40m, from the config."""
    assert RunFootprint(memory_limit=70 * MiB, tmpfs=(48 + 40) * MiB) == FOOTPRINT
    assert RunFootprint.of_default_engine() == FOOTPRINT


def test_the_footprint_follows_the_config_and_the_memfs_size() -> None:
    config = type(NSJAIL_CONFIG)()
    config.CopyFrom(NSJAIL_CONFIG)
    config.cgroup_mem_max = 100 * MiB
    next(m for m in config.mount if m.dst == "/dev/shm").options = "size=1g,mode=1777"
    assert RunFootprint.of(config, 10 * MiB) == RunFootprint(100 * MiB, 10 * MiB + 1024 * MiB)
    without_shm = type(NSJAIL_CONFIG)(cgroup_mem_max=5)
    assert RunFootprint.of(without_shm, 7) == RunFootprint(5, 7)


def test_a_smaller_footprint_fits_more_default_runs() -> None:
    env = {"SNEKBOX_MAX_CONCURRENT_RUNS": ""}
    small = RunFootprint(memory_limit=1, tmpfs=0)
    assert ApiSettings.from_env(env, footprint=small).max_concurrent_runs == MAX_DEFAULT_RUNS


def test_environment_overrides() -> None:
    settings = ApiSettings.from_env(
        {
            "SNEKBOX_MAX_CONCURRENT_RUNS": "8",
            "SNEKBOX_MAX_BODY_SIZE": "1000",
            "SNEKBOX_BODY_TIMEOUT": "2.5",
            "SNEKBOX_SLOTS_DIR": "/tmp/slots",
            "SNEKBOX_POOL": "off",
        }
    )
    assert settings == ApiSettings(8, 1000, 2.5, "/tmp/slots")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SNEKBOX_MAX_CONCURRENT_RUNS", "0"),
        ("SNEKBOX_MAX_CONCURRENT_RUNS", "many"),
        ("SNEKBOX_MAX_CONCURRENT_RUNS", "2.5"),
        ("SNEKBOX_MAX_BODY_SIZE", "-1"),
        ("SNEKBOX_BODY_TIMEOUT", "soon"),
    ],
)
def test_bad_values_stop_start_up_with_their_name(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        ApiSettings.from_env({name: value})


def test_a_shm_size_that_is_not_bytes_stops_start_up() -> None:
    config = type(NSJAIL_CONFIG)()
    config.CopyFrom(NSJAIL_CONFIG)
    next(m for m in config.mount if m.dst == "/dev/shm").options = "size=50%"
    with pytest.raises(ValueError, match="size=50%"):
        RunFootprint.of(config, 48 * MiB)
