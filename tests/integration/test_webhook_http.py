"""One delivery attempt against real HTTP servers on this machine: what counts as delivered, the
address check made on the address connected to, one deadline for the whole attempt, a bounded
answer, redirects kept to the same host, and TLS checked against the name, not the address."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from whisper_transcriber.service.webhooks import http as webhooks_http
from whisper_transcriber.service.webhooks.http import TargetPolicy, post

OPEN = TargetPolicy(guarded=False)
GUARDED = TargetPolicy(guarded=True)
LOOPBACK_ALLOWED = TargetPolicy(guarded=True, allow=("127.0.0.0/8",))

Handle = Callable[[BaseHTTPRequestHandler, bytes], None]
Got = list[tuple[str, dict[str, str], bytes]]


@contextmanager
def server(handle: Handle, tls: ssl.SSLContext | None = None) -> Iterator[tuple[int, Got]]:
    """A server on 127.0.0.1 whose POSTs `handle` answers; yields its port and what it got."""
    got: Got = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            got.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            handle(self, body)

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    http.daemon_threads = True
    if tls is not None:
        http.socket = tls.wrap_socket(http.socket, server_side=True)
    # A short poll: shutdown() waits for the loop to look.
    thread = threading.Thread(target=http.serve_forever, args=(0.05,), daemon=True)
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
            {"webhook-id": "msg_1", "Webhook-Signature": "v1,abc"},
            policy=OPEN,
        )
    assert result.delivered and result.status == 204 and result.error is None
    ((path, headers, body),) = got
    assert (path, body) == ("/hook?x=1", b'{"a": 1}')
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-signature"] == "v1,abc"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == "whisper-transcriber-webhooks"
    assert headers["host"] == f"127.0.0.1:{port}"


def test_given_headers_win_over_the_defaults() -> None:
    with server(answer(200)) as (port, got):
        post(
            f"http://127.0.0.1:{port}/",
            b"{}",
            {"Content-Type": "application/cloudevents+json", "User-Agent": "mine"},
            policy=OPEN,
        )
    ((_path, headers, _body),) = got
    assert (headers["content-type"], headers["user-agent"]) == (
        "application/cloudevents+json",
        "mine",
    )


def test_an_error_status_is_not_delivered_and_keeps_the_start_of_the_answer() -> None:
    with server(answer(500, b"database down")) as (port, _got):
        result = post(f"http://127.0.0.1:{port}/", b"{}", {}, policy=OPEN)
    assert not result.delivered
    assert (result.status, result.error, result.excerpt) == (500, "HTTP 500", "database down")


def test_an_answer_that_is_not_utf8_is_kept_with_replacements() -> None:
    with server(answer(400, b"bad \xff\xfe input")) as (port, _got):
        result = post(f"http://127.0.0.1:{port}/", b"{}", {}, policy=OPEN)
    assert (result.error, result.excerpt) == ("HTTP 400", "bad \ufffd\ufffd input")


def test_a_guarded_delivery_refuses_loopback_by_name_and_connects_nowhere() -> None:
    with server(answer(200)) as (port, got):
        result = post(f"http://localhost:{port}/", b"{}", {}, policy=GUARDED)
        allowed = post(f"http://localhost:{port}/", b"{}", {}, policy=LOOPBACK_ALLOWED)
        operators = post(f"http://localhost:{port}/", b"{}", {}, policy=OPEN)
    assert result.status is None and result.error is not None
    assert result.error.startswith("refused: ") and "127.0.0.1 is a loopback address" in (
        result.error
    )
    assert allowed.delivered and operators.delivered
    assert len(got) == 2  # the refused one never reached the server


def test_a_guarded_delivery_refuses_a_loopback_address_before_connecting() -> None:
    with server(answer(200)) as (port, got):
        for host in ("127.0.0.1", "2130706433", "[::ffff:127.0.0.1]"):
            result = post(f"http://{host}:{port}/", b"{}", {}, policy=GUARDED)
            assert result.status is None and result.error is not None, host
            assert result.error.startswith("refused: ") and "loopback" in result.error, host
        allowed = post(f"http://127.0.0.1:{port}/", b"{}", {}, policy=LOOPBACK_ALLOWED)
    assert allowed.delivered
    assert len(got) == 1


def test_an_allow_list_admits_only_what_it_names() -> None:
    elsewhere = TargetPolicy(guarded=True, allow=("10.0.0.0/8",))
    by_name = TargetPolicy(guarded=True, allow=("localhost",))
    with server(answer(200)) as (port, got):
        result = post(f"http://127.0.0.1:{port}/", b"{}", {}, policy=elsewhere)
        named = post(f"http://localhost:{port}/", b"{}", {}, policy=by_name)
        unnamed = post(f"http://127.0.0.1:{port}/", b"{}", {}, policy=by_name)
    assert result.error is not None and "callback_allow" in result.error
    assert named.delivered
    assert unnamed.error is not None and "callback_allow" in unnamed.error
    assert len(got) == 1


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

    with server(silent) as (port, got):
        try:
            result = post(f"http://127.0.0.1:{port}/", b"{}", {}, policy=OPEN, timeout_s=1)
        finally:
            release.set()
    assert result.error == "timed out after 1 s" and result.status is None
    assert len(got) == 1  # it was sent: the receiver kept the answer


def test_a_listener_that_never_accepts_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # the kernel completes the handshake; nobody ever reads the request
        port = listener.getsockname()[1]
        result = post(f"http://127.0.0.1:{port}/", b"{}", {}, policy=OPEN, timeout_s=1)
    assert result.error == "timed out after 1 s" and result.status is None


def test_a_large_answer_is_read_only_as_far_as_the_limit() -> None:
    with server(answer(200, b"y" * 300_000)) as (port, _got):
        result = post(f"http://127.0.0.1:{port}/", b"{}", {}, policy=OPEN, max_answer_bytes=1024)
    # The receiver took the event: its answer's length is its business, not a failure.
    assert result.delivered and result.error is None
    assert result.excerpt == "y" * 500


def test_a_large_error_answer_keeps_its_status() -> None:
    with server(answer(503, b"z" * 300_000)) as (port, _got):
        result = post(f"http://127.0.0.1:{port}/", b"{}", {}, policy=OPEN, max_answer_bytes=100)
    assert (result.status, result.error, result.excerpt) == (503, "HTTP 503", "z" * 100)


def test_a_307_on_the_same_host_is_followed_with_the_same_post() -> None:
    def moved(request: BaseHTTPRequestHandler, body: bytes) -> None:
        if request.path == "/old":
            answer(307, headers={"Location": "/new"})(request, body)
        else:
            answer(200, b"here")(request, body)

    with server(moved) as (port, got):
        result = post(f"http://localhost:{port}/old", b'{"n": 1}', {"webhook-id": "m"}, policy=OPEN)
    assert result.delivered and result.excerpt == "here"
    assert [(path, body) for path, _headers, body in got] == [
        ("/old", b'{"n": 1}'),
        ("/new", b'{"n": 1}'),
    ]
    assert all(headers["webhook-id"] == "m" for _path, headers, _body in got)


def test_a_308_under_the_guard_is_checked_again_and_followed() -> None:
    def moved(request: BaseHTTPRequestHandler, body: bytes) -> None:
        if request.path == "/old":
            answer(308, headers={"Location": f"http://127.0.0.1:{port}/new"})(request, body)
        else:
            answer(200)(request, body)

    with server(moved) as (port, got):
        result = post(f"http://127.0.0.1:{port}/old", b"{}", {}, policy=LOOPBACK_ALLOWED)
    assert result.delivered
    assert [path for path, _headers, _body in got] == ["/old", "/new"]


def test_redirects_stop_after_the_limit() -> None:
    def again(request: BaseHTTPRequestHandler, body: bytes) -> None:
        answer(307, headers={"Location": f"{request.path}x"})(request, body)

    with server(again) as (port, got):
        result = post(f"http://127.0.0.1:{port}/", b"{}", {}, policy=OPEN, max_redirects=2)
    assert (result.status, result.error) == (307, "more than 2 redirects")
    assert [path for path, _headers, _body in got] == ["/", "/x", "/xx"]


@pytest.mark.parametrize("policy", [OPEN, LOOPBACK_ALLOWED])
def test_a_redirect_to_another_host_is_not_followed(policy: TargetPolicy) -> None:
    with server(answer(200)) as (target_port, target_got):
        elsewhere = f"http://127.0.0.1:{target_port}/"
        with server(answer(307, headers={"Location": elsewhere})) as (port, got):
            result = post(f"http://localhost:{port}/", b"{}", {}, policy=policy)
    assert result.status == 307
    assert result.error == f"redirected to another host ({elsewhere})"
    assert len(got) == 1 and target_got == []


def test_a_redirect_to_another_port_is_not_followed() -> None:
    with server(answer(200)) as (target_port, target_got):
        elsewhere = f"http://127.0.0.1:{target_port}/"
        with server(answer(308, headers={"Location": elsewhere})) as (port, _got):
            result = post(f"http://127.0.0.1:{port}/", b"{}", {}, policy=OPEN)
    assert result.error is not None and "another host" in result.error
    assert target_got == []


@pytest.mark.parametrize("status", [301, 302, 303])
def test_a_redirect_that_would_become_a_get_is_an_error(status: int) -> None:
    with server(answer(status, headers={"Location": "/elsewhere"})) as (port, got):
        result = post(f"http://127.0.0.1:{port}/", b"{}", {}, policy=OPEN)
    assert result.status == status
    assert result.error == (
        f"redirected (HTTP {status}) to http://127.0.0.1:{port}/elsewhere; webhook deliveries "
        "are not re-sent as GET"
    )
    assert len(got) == 1


def test_a_closed_port_cannot_connect() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        result = post(f"http://127.0.0.1:{port}/", b"{}", {}, policy=OPEN)
    assert result.status is None
    assert result.error is not None and result.error.startswith("cannot connect")


def test_a_url_no_resolver_takes_is_an_answer_not_an_exception() -> None:
    for url in ("http://xn--a.example/", "http://" + "a" * 64 + ".example/"):
        result = post(url, b"{}", {}, policy=OPEN)
        assert result.status is None and result.error is not None, url


# -- TLS: connected to the checked address, verified against the name --------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test CA and a certificate from it for the name localhost only (no address in it)."""
    openssl = shutil.which("openssl")
    if openssl is None:  # a machine without it cannot run this test: say so, never skip
        pytest.fail("the openssl command makes the test certificates", pytrace=False)
    folder = tmp_path_factory.mktemp("tls")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=folder, check=True, capture_output=True)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=webhook test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    run("req", *key, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost")
    (folder / "leaf.ext").write_text(
        "subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext")  # fmt: skip
    return folder


@contextmanager
def tls_server(certificates: Path) -> Iterator[tuple[int, Got, list[str | None]]]:
    """An HTTPS server answering 200; yields its port, what it got and the names clients sent
    in SNI."""
    names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates / "leaf.pem", certificates / "leaf.key")

    def heard(_sock: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        names.append(name)

    context.sni_callback = heard
    with server(answer(200, b"secure"), tls=context) as (port, got):
        yield port, got, names


def trusting(monkeypatch: pytest.MonkeyPatch, certificates: Path) -> None:
    """Deliveries trust the test CA (in place of certifi's roots); verification stays on."""
    context = ssl.create_default_context(cafile=str(certificates / "ca.pem"))
    monkeypatch.setattr(webhooks_http, "_tls_context", lambda: context)


@pytest.mark.parametrize("policy", [OPEN, LOOPBACK_ALLOWED])
def test_tls_is_verified_against_the_name_while_connecting_to_the_checked_address(
    certificates: Path, monkeypatch: pytest.MonkeyPatch, policy: TargetPolicy
) -> None:
    trusting(monkeypatch, certificates)
    with tls_server(certificates) as (port, got, names):
        result = post(f"https://localhost:{port}/hook", b"{}", {}, policy=policy)
    # The certificate names localhost only: had TLS used the address connected to, it would fail.
    assert result.delivered and result.excerpt == "secure"
    assert names == ["localhost"]
    ((_path, headers, _body),) = got
    assert headers["host"] == f"localhost:{port}"


def test_tls_refuses_a_certificate_for_another_name(
    certificates: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trusting(monkeypatch, certificates)
    with tls_server(certificates) as (port, got, _names):
        result = post(f"https://127.0.0.1:{port}/", b"{}", {}, policy=OPEN)
    assert result.status is None and result.error is not None
    assert result.error.startswith("cannot connect") and "certificate" in result.error
    assert got == []


def test_tls_trusts_only_the_public_roots(certificates: Path) -> None:
    with tls_server(certificates) as (port, got, _names):
        result = post(f"https://localhost:{port}/", b"{}", {}, policy=OPEN)
    assert result.error is not None and "certificate verify failed" in result.error
    assert got == []
