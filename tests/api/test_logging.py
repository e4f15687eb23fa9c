"""Log lines: the level switch, the line format, and Gunicorn's logs through snekbox's."""

from __future__ import annotations

import io
import logging
import re
from types import SimpleNamespace

import pytest

from snekbox.utils import logging as snek_logging
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
