"""Server settings from the environment, and their host-sized defaults."""

from __future__ import annotations

import pytest

from snekbox.api.settings import (
    MAX_DEFAULT_RUNS,
    RUN_MEMORY_FOOTPRINT,
    ApiSettings,
    default_max_body_size,
    default_max_concurrent_runs,
)

MiB = 1024**2


def test_defaults() -> None:
    settings = ApiSettings.from_env({})
    assert settings.max_concurrent_runs == default_max_concurrent_runs()
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
        (RUN_MEMORY_FOOTPRINT * 3 + 1, 3),
        (2048 * MiB, 12),
        (1024**4, MAX_DEFAULT_RUNS),
    ],
)
def test_default_runs_follow_memory(memory: int, runs: int) -> None:
    assert default_max_concurrent_runs(memory) == runs


def test_environment_overrides() -> None:
    settings = ApiSettings.from_env(
        {
            "SNEKBOX_MAX_CONCURRENT_RUNS": "8",
            "SNEKBOX_MAX_BODY_SIZE": "1000",
            "SNEKBOX_BODY_TIMEOUT": "2.5",
            "SNEKBOX_SLOTS_DIR": "/tmp/slots",
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
