"""Sentry stays off without a DSN and starts with Falcon's integration with one."""

from __future__ import annotations

from typing import Any

import pytest

from snekbox.utils import sentry


def test_sentry_stays_off_without_a_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SNEKBOX_SENTRY_DSN", raising=False)
    assert sentry.init_sentry("1.0.0") is False


def test_sentry_starts_with_falcon_and_the_release(monkeypatch: pytest.MonkeyPatch) -> None:
    import sentry_sdk
    from sentry_sdk.integrations.falcon import FalconIntegration

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(sentry_sdk, "init", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(sentry, "_initialised", False)
    monkeypatch.setenv("SNEKBOX_SENTRY_DSN", "https://key@sentry.invalid/1")
    assert sentry.init_sentry("1.2.3") is True
    assert calls[0]["dsn"] == "https://key@sentry.invalid/1"
    assert calls[0]["release"] == "snekbox@1.2.3"
    assert any(isinstance(i, FalconIntegration) for i in calls[0]["integrations"])
