"""The serving settings' environment variables."""

from __future__ import annotations

import pytest

from snekbox.serving.settings import ServingSettings


def test_defaults_without_the_variables() -> None:
    settings = ServingSettings.from_env({})
    assert settings == ServingSettings()
    assert settings.head_timeout == 10.0


def test_each_variable_sets_its_value() -> None:
    settings = ServingSettings.from_env(
        {
            "SNEKBOX_HEAD_TIMEOUT": "2.5",
            "SNEKBOX_MAX_PENDING_HEADS": "100",
            "SNEKBOX_MAX_PENDING_HEADS_PER_CLIENT": "7",
        }
    )
    assert (settings.head_timeout, settings.max_pending_heads) == (2.5, 100)
    assert settings.max_pending_heads_per_client == 7


@pytest.mark.parametrize(
    ("name", "value"),
    [("SNEKBOX_HEAD_TIMEOUT", "0"), ("SNEKBOX_MAX_PENDING_HEADS", "lots")],
)
def test_a_bad_value_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        ServingSettings.from_env({name: value})
