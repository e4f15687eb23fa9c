"""How the server holds up: concurrent sleepers, stalled clients, HTTP edge cases, logs."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

import pytest
from gunicorn.util import import_app

from snekbox import SnekAPI
from tests.support.openapi_doc import ORIGINAL_FIELDS
from tests.support.server import (
    BODY_TIMEOUT,
    CONCURRENT_RUNS,
    Server,
    require_provisioned_root,
    running_server,
)

pytestmark = pytest.mark.integration


def test_eight_concurrent_sleeps_finish_together(server: Server) -> None:
    """Runs that wait hold a slot and a thread, not a worker process."""
    assert CONCURRENT_RUNS >= 8
    body = {"input": "import time; time.sleep(5); print('slept')"}
    start = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: server.post_eval(body), range(8)))
    elapsed = time.monotonic() - start
    answers = [{key: r.json[key] for key in ORIGINAL_FIELDS} for r in results]
    assert answers == [{"stdout": "slept\n", "returncode": 0, "files": []}] * 8
    assert elapsed < 7.0, f"eight 5 s sleeps took {elapsed:.1f} s"


def test_more_runs_than_slots_wait_their_turn(server: Server) -> None:
    """Past the cap, runs queue for a slot instead of failing or overloading the host."""
    body = {"input": "import time; time.sleep(2); print('ok')"}
    count = CONCURRENT_RUNS + 2
    start = time.monotonic()
    with ThreadPoolExecutor(count) as pool:
        results = list(pool.map(lambda _: server.post_eval(body), range(count)))
    elapsed = time.monotonic() - start
    assert all(r.json["stdout"] == "ok\n" for r in results)
    assert 4.0 <= elapsed < 7.0, (
        f"{count} runs of 2 s with {CONCURRENT_RUNS} slots: {elapsed:.1f} s"
    )


def open_stalled(server: Server, payload: bytes) -> socket.socket:
    """Connect, send `payload` (an incomplete request), and then say nothing more."""
    sock = socket.create_connection((server.host, server.port), timeout=30)
    sock.sendall(payload)
    return sock


HALF_BODY = (
    b"POST /eval HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
    b"Content-Length: 200\r\n\r\n" + b'{"input": "print(1'
)
HALF_HEADERS = b"POST /eval HTTP/1.1\r\nHost: test\r\nContent-Ty"


@contextmanager
def stalled_clients(server: Server, payload: bytes, count: int) -> Iterator[list[socket.socket]]:
    with ExitStack() as stack:
        sockets = []
        for _ in range(count):
            sock = open_stalled(server, payload)
            stack.callback(sock.close)
            sockets.append(sock)
        time.sleep(0.5)  # let the workers pick them up and block on them
        yield sockets


def test_eval_answers_while_eight_clients_stall_mid_body(server: Server) -> None:
    with stalled_clients(server, HALF_BODY, 8) as sockets:
        start = time.monotonic()
        response = server.post_eval({"input": "print('still here')"}, timeout=10)
        assert response.json["stdout"] == "still here\n"
        assert time.monotonic() - start < 2.0

        # Each stalled client is then told why it is being dropped.
        for sock in sockets:
            sock.settimeout(BODY_TIMEOUT + 5)
            head, body = read_answer(sock)
            assert head.startswith(b"HTTP/1.1 408 "), head
            assert b"content-type: application/json" in head.lower()
            assert json.loads(body)["title"] == "408 Request Timeout"
            assert sock.recv(1) == b""  # and the connection is closed


def test_eval_answers_while_clients_stall_mid_headers(server: Server) -> None:
    with stalled_clients(server, HALF_HEADERS, 8), stalled_clients(server, HALF_BODY, 8):
        start = time.monotonic()
        for _ in range(3):
            response = server.post_eval({"input": "print('ok')"}, timeout=10)
            assert response.json["stdout"] == "ok\n"
        assert time.monotonic() - start < 4.0


def test_clients_that_connect_and_send_nothing_do_not_block(server: Server) -> None:
    with stalled_clients(server, b"", 40):
        response = server.post_eval({"input": "print('ok')"}, timeout=10)
        assert response.json["stdout"] == "ok\n"


def read_answer(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read one HTTP response with a Content-Length; return its head and body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: (\d+)", head)[1])  # type: ignore[index]
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, body
        body += chunk
    return head, body


def test_oversized_body_is_refused_before_it_is_sent(server: Server) -> None:
    """A 413 comes back on the headers alone; the server does not read a gigabyte first."""
    sock = socket.create_connection((server.host, server.port), timeout=10)
    with sock:
        sock.sendall(
            b"POST /eval HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Content-Length: 5000000000\r\n\r\n{"
        )
        start = time.monotonic()
        head, body = read_answer(sock)
        assert time.monotonic() - start < 1.0
    assert head.startswith(b"HTTP/1.1 413 "), head
    assert b"5000000000" in json.loads(body)["description"].encode()


def test_chunked_request_body(server: Server) -> None:
    connection = server.connection()
    try:
        chunks = iter([b'{"input": ', b"\"print('chunked')\"}"])
        connection.request(
            "POST",
            "/eval",
            body=chunks,
            headers={"Content-Type": "application/json"},
            encode_chunked=True,
        )
        answer = connection.getresponse()
        assert answer.status == 200
        assert json.loads(answer.read())["stdout"] == "chunked\n"
    finally:
        connection.close()


def test_keep_alive_serves_several_requests(server: Server) -> None:
    connection = server.connection()
    try:
        for i in range(3):
            connection.request(
                "POST",
                "/eval",
                body=json.dumps({"input": f"print({i})"}),
                headers={"Content-Type": "application/json"},
            )
            answer = connection.getresponse()
            assert json.loads(answer.read())["stdout"] == f"{i}\n"
    finally:
        connection.close()


def test_non_json_is_415(server: Server) -> None:
    response = server.request(
        "POST", "/eval", "input=print(1)", {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status == 415
    assert set(response.json) == {"title", "description"}


def test_malformed_and_deep_json_are_400(server: Server) -> None:
    for body, title in [
        ("{nope", "Invalid JSON"),
        ("[" * 100_000, "Request data is nested too deeply"),
    ]:
        response = server.request("POST", "/eval", body, {"Content-Type": "application/json"})
        assert response.status == 400
        assert response.json["title"] == title


@pytest.mark.parametrize("accept", ["text/html", "application/xml", "*/*"])
def test_unknown_route_and_wrong_method(server: Server, accept: str) -> None:
    missing = server.request("GET", "/nowhere", headers={"Accept": accept})
    assert missing.status == 404 and set(missing.json) == {"title", "description"}
    wrong = server.request("GET", "/eval", headers={"Accept": accept})
    assert wrong.status == 405 and set(wrong.json) == {"title", "description"}


def test_head_eval_is_405(server: Server) -> None:
    """A liveness probe some clients use: any answer is fine, and 405 is what they get."""
    assert server.request("HEAD", "/eval").status == 405


def log_line(name: str, level: str, message: str) -> str:
    """A regular expression for one of snekbox's log lines."""
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    return rf"(?m)^{stamp} \| +\d+ \| {name} +\| {level} +\| {message}$"


def test_logs_go_to_stdout_in_one_format(server: Server) -> None:
    server.post_eval({"input": "print('logged')"})
    time.sleep(0.2)
    log = server.log()
    access = log_line(r"gunicorn\.access", "INFO", r'127\.0\.0\.1 "POST /eval" 200 \d+ \d+ms')
    assert re.search(access, log), log[-2000:]
    assert re.search(log_line(r"snekbox\.\S+", "INFO", ".*"), log)
    assert re.search(log_line(r"gunicorn\.error", "INFO", ".*"), log)


def test_debug_logging_shows_nsjail_arguments(tmp_path_factory: pytest.TempPathFactory) -> None:
    log_path = tmp_path_factory.mktemp("debug") / "server.log"
    with running_server(log_path, SNEKBOX_DEBUG="1") as debug_server:
        assert debug_server.post_eval({"input": "print('hi')"}).json["stdout"] == "hi\n"
        time.sleep(0.2)
        log = debug_server.log()
    assert re.search(log_line(r"snekbox\.nsjail", "DEBUG", r"NsJail arguments: .*--config.*"), log)
    assert re.search(log_line(r"snekbox\.api\.resources\.eval", "DEBUG", "Evaluating .*"), log)


def test_wsgi_app_arguments_reach_nsjail() -> None:
    """`wsgi_app = "snekbox:SnekAPI(max_output_size=2_000_000)"` configures the engine."""
    require_provisioned_root()
    app = import_app("snekbox:SnekAPI(max_output_size=2_000_000, files_limit=7)")
    assert isinstance(app, SnekAPI)
    assert app.nsjail.max_output_size == 2_000_000
    assert app.nsjail.files_limit == 7
