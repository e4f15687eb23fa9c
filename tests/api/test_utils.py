"""Logging set-up, Gunicorn's logger class, Sentry's switch and bounded error quoting."""

from __future__ import annotations

import io
import logging
import re
from types import SimpleNamespace
from typing import Any

import pytest

from snekbox.api.quoting import REPR_LIMIT, bounded_repr
from snekbox.utils import logging as snek_logging
from snekbox.utils import sentry
from snekbox.utils.gunicorn import GunicornLogger

LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \| +\d+ \| (?P<name>\S+) +\| (?P<level>\w+) +\| "
    r"(?P<message>.*)$"
)


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """Point the shared stdout handler at a buffer."""
    buffer = io.StringIO()
    handler = snek_logging.stdout_handler()
    assert isinstance(handler, logging.StreamHandler)
    monkeypatch.setattr(handler, "stream", buffer)
    return buffer


@pytest.mark.parametrize(("value", "level"), [("1", logging.DEBUG), ("", logging.INFO)])
def test_snekbox_debug_switches_the_level(
    monkeypatch: pytest.MonkeyPatch, value: str, level: int
) -> None:
    monkeypatch.setenv("SNEKBOX_DEBUG", value)
    assert snek_logging.init_logger().level == level


def test_lines_have_time_pid_name_and_level(captured: io.StringIO) -> None:
    snek_logging.init_logger(debug=False)
    logging.getLogger("snekbox.api.test").warning("hello %s", "there")
    match = LINE.match(captured.getvalue().splitlines()[-1])
    assert match is not None, captured.getvalue()
    assert match["name"] == "snekbox.api.test"
    assert match["level"] == "WARNING"
    assert match["message"] == "hello there"


def test_gunicorn_logs_through_snekbox(captured: io.StringIO) -> None:
    cfg = SimpleNamespace(
        loglevel="info",
        errorlog="-",
        accesslog="-",
        capture_output=False,
        syslog=False,
        disable_redirect_access_to_syslog=False,
        logconfig=None,
        logconfig_dict={},
        logconfig_json=None,
        access_log_format='%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms',
    )
    logger = GunicornLogger(cfg)
    logger.info("Booting worker")
    logger.access_log.info('127.0.0.1 "POST /eval" 200 52 7ms')
    lines = [LINE.match(line) for line in captured.getvalue().splitlines()]
    assert [(m["name"], m["message"]) for m in lines if m] == [
        ("gunicorn.error", "Booting worker"),
        ("gunicorn.access", '127.0.0.1 "POST /eval" 200 52 7ms'),
    ]


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


@pytest.mark.parametrize(
    "value",
    [400, "x", {"stuff": "foo"}, [1, "a", None, True, 2.5], {"a": [{"b": "c"}]}, [], {}],
)
def test_bounded_repr_is_repr_for_small_values(value: object) -> None:
    assert bounded_repr(value) == repr(value)


@pytest.mark.parametrize(
    "value",
    ["x" * 10_000, ["y" * 100] * 1000, {str(i): i for i in range(10_000)}],
)
def test_bounded_repr_cuts_large_values(value: object) -> None:
    text = bounded_repr(value)
    assert len(text) < 2 * REPR_LIMIT + 50
    assert "..." in text


def test_bounded_repr_cuts_deep_values() -> None:
    value: list[object] = []
    for _ in range(5000):
        value = [value]
    assert bounded_repr(value).count("[") < 20
