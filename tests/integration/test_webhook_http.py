"""One delivery attempt against real HTTP servers on this machine: what counts as delivered, the
address check made on the address connected to, one deadline for the whole attempt, a bounded
answer, and redirects kept to the same host."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from whisper_transcriber.service.webhooks.http import TargetPolicy, post

OPEN = TargetPolicy(guarded=False)
GUARDED = TargetPolicy(guarded=True)
LOOPBACK_ALLOWED = TargetPolicy(guarded=True, allow=("127.0.0.0/8",))

Handle = Callable[[BaseHTTPRequestHandler, bytes], None]


@contextmanager
def server(handle: Handle) -> Iterator[tuple[int, list[tuple[str, dict[str, str], bytes]]]]:
    """A server on 127.0.0.1 whose POSTs `handle` answers; yields its port and what it got."""
    got: list[tuple[str, dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            got.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            handle(self, body)

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    http.daemon_threads = True
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield http.server_address[1], got
    finally:
        http.shutdown()
        http.server_close()


def answer(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Handle:
    def handle(request: BaseHTTPRequestHandler, _body: bytes) -> None:
        request.send_response(status)
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    return handle


def test_a_2xx_is_delivered_with_the_body_and_headers_as_sent() -> None:
    with server(answer(204)) as (port, got):
        result = post(
            f"http://127.0.0.1:{port}/hook?x=1",
            b'{"a": 1}',
            {"webhook-id": "msg_1"},
            policy=OPEN,
        )
    assert result.delivered and result.status == 204 and result.error is None
    ((path, headers, body),) = got
    assert (path, body) == ("/hook?x=1", b'{"a": 1}')
    assert headers["webhook-id"] == "msg_1"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == "whisper-transcriber-webhooks"


def test_an_error_status_is_not_delivered_and_keeps_the_start_of_the_answer() -> None:
    with server(answer(500, b"database down")) as (port, _got):
        result = post(f"http://127.0.0.1:{port}/", b"{}", {}, policy=OPEN)
    assert not result.delivered
    assert (result.status, result.error, result.excerpt) == (500, "HTTP 500", "database down")


def test_a_guarded_delivery_refuses_loopback_by_name_and_connects_nowhere() -> None:
    with server(answer(200)) as (port, got):
        result = post(f"http://localhost:{port}/", b"{}", {}, policy=GUARDED)
        allowed = post(f"http://localhost:{port}/", b"{}", {}, policy=LOOPBACK_ALLOWED)
        operators = post(f"http://localhost:{port}/", b"{}", {}, policy=OPEN)
    assert result.status is None and result.error is not None
    assert "refused" in result.error and "loopback" in result.error
    assert allowed.delivered and operators.delivered
    assert len(got) == 2  # the refused one never reached the server


def test_an_allow_list_admits_only_what_it_names() -> None:
    elsewhere = TargetPolicy(guarded=True, allow=("10.0.0.0/8",))
    with server(answer(200)) as (port, got):
        result = post(f"http://127.0.0.1:{port}/", b"{}", {}, policy=elsewhere)
    assert result.error is not None and "callback_allow" in result.error
    assert got == []


def test_a_receiver_that_trickles_its_answer_is_cut_off_at_the_deadline() -> None:
    stop = threading.Event()

    def trickle(request: BaseHTTPRequestHandler, _body: bytes) -> None:
        request.send_response(200)
        request.send_header("Content-Length", "1000000")
        request.end_headers()
        while not stop.wait(0.05):  # a byte at a time, each well inside any read timeout
            try:
                request.wfile.write(b"x")
                request.wfile.flush()
            except OSError:
                return

    with server(trickle) as (port, _got):
        try:
            result = post(f"http://127.0.0.1:{port}/", b"{}", {}, policy=OPEN, timeout_s=1)
        finally:
            stop.set()
    assert result.error == "timed out after 1 s" and not result.delivered


def test_a_receiver_that_never_answers_times_out() -> None:
    release = threading.Event()

    def silent(_request: BaseHTTPRequestHandler, _body: bytes) -> None:
        release.wait(30)

    with server(silent) as (port, _got):
        try:
            result = post(f"http://127.0.0.1:{port}/", b"{}", {}, policy=OPEN, timeout_s=1)
        finally:
            release.set()
    assert result.error == "timed out after 1 s" and result.status is None


def test_a_large_answer_is_read_only_as_far_as_the_limit() -> None:
    with server(answer(200, b"y" * 300_000)) as (port, _got):
        result = post(f"http://127.0.0.1:{port}/", b"{}", {}, policy=OPEN, max_answer_bytes=1024)
    assert result.delivered
    assert result.excerpt == "y" * 500


def test_a_307_on_the_same_host_is_followed_with_the_same_post() -> None:
    def moved(request: BaseHTTPRequestHandler, body: bytes) -> None:
        if request.path == "/old":
            answer(307, headers={"Location": "/new"})(request, body)
        else:
            answer(200, b"here")(request, body)

    with server(moved) as (port, got):
        result = post(f"http://127.0.0.1:{port}/old", b'{"n": 1}', {}, policy=OPEN)
    assert result.delivered and result.excerpt == "here"
    assert [(path, body) for path, _headers, body in got] == [
        ("/old", b'{"n": 1}'),
        ("/new", b'{"n": 1}'),
    ]


def test_a_redirect_to_another_host_is_not_followed() -> None:
    with server(answer(200)) as (target_port, target_got):
        to_other = answer(307, headers={"Location": f"http://127.0.0.1:{target_port}/"})
        with server(to_other) as (port, _got):
            result = post(f"http://localhost:{port}/", b"{}", {}, policy=OPEN)
    assert result.error is not None and "another host" in result.error
    assert target_got == []


@pytest.mark.parametrize("status", [301, 302, 303])
def test_a_redirect_that_would_become_a_get_is_an_error(status: int) -> None:
    with server(answer(status, headers={"Location": "/elsewhere"})) as (port, got):
        result = post(f"http://127.0.0.1:{port}/", b"{}", {}, policy=OPEN)
    assert result.error is not None and "not sent again as GET" in result.error
    assert len(got) == 1


def test_a_closed_port_cannot_connect() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        result = post(f"http://127.0.0.1:{port}/", b"{}", {}, policy=OPEN)
    assert result.error is not None and result.error.startswith("cannot connect")
