"""HTTP details against a real service: HEAD wherever GET answers, an Allow header on every 405,
an API key that HTTP cannot carry refused at start, and a warning for an open API without one."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.cli import run_cli
from tests.helpers.media import FIXTURES, place
from tests.helpers.service import Service, running_service, service_env
from tests.helpers.waiting import wait_until

NO_KEY_WARNING = "NO API KEY"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("http")
    place(FIXTURES / "speech_a.wav", root / "inbox")
    return root


@pytest.fixture(scope="module")
def service(folder: Path) -> Iterator[Service]:
    """The API alone (jobs stay queued), with one job."""
    env = service_env(DATABASE_URL=f"sqlite:///{folder / 'jobs.db'}")
    with running_service("--role", "api", "--inbox", folder / "inbox", cwd=folder, env=env) as s:
        s.submit(folder / "inbox" / "speech_a.wav")
        yield s
        assert s.stop() == 0


GET_PATHS = [
    "/health",
    "/ready",
    "/jobs",
    "/jobs/1",
    "/jobs/1/audio",
    "/jobs/1/audio-link",
    "/jobs/999",  # a 404: HEAD gives the same
    "/jobs/1/transcript",  # a 404 too, as the job has not run
    "/options",
    "/status",
    "/transcripts/search?q=museum",
    "/v1/models",
    "/",
    "/ui/style.css",
    "/openapi.json",
    "/docs",
]


@pytest.mark.parametrize("path", GET_PATHS)
def test_head_answers_with_the_get_headers_and_no_body(service: Service, path: str) -> None:
    get = service.client.get(path)
    head = service.client.head(path)
    assert head.status_code == get.status_code, head.text
    assert head.content == b""
    for name in ("content-type", "content-length", "allow", "content-range", "accept-ranges"):
        assert head.headers.get(name) == get.headers.get(name), name
    if "content-length" not in get.headers:  # streamed: the length is what was sent
        assert get.headers.get("transfer-encoding") == "chunked"


def test_head_sends_no_body_on_the_wire_even_for_a_stream(service: Service) -> None:
    """HEAD of the endless /events, then a GET on the same connection: the GET's answer follows
    the HEAD's headers directly, so no body byte was sent."""
    port = int(service.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            b"HEAD /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            b"HEAD /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        received = b""
        while not received.endswith(b'{"status":"ok"}'):
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
    answers = received.split(b"\r\n\r\n")
    assert [a.split(b"\r\n", 1)[0] for a in answers[:3]] == [b"HTTP/1.1 200 OK"] * 3
    assert b"content-type: text/event-stream" in answers[0]
    assert b"content-type: application/json" in answers[1]
    assert answers[3] == b'{"status":"ok"}'


METHOD_NOT_ALLOWED = [
    ("POST", "/health", "GET, HEAD"),
    ("PUT", "/jobs/1", "DELETE, GET, HEAD"),
    ("PATCH", "/jobs/1/retry", "POST"),
    ("GET", "/transcribe", "POST"),
    ("DELETE", "/jobs", "GET, HEAD"),
    ("HEAD", "/asr", "POST"),
    ("OPTIONS", "/v1/audio/transcriptions", "POST"),
    ("POST", "/v1/models", "GET, HEAD"),
    ("POST", "/openapi.json", "GET, HEAD"),
    ("DELETE", "/ui/style.css", "GET, HEAD"),
    ("POST", "/", "GET, HEAD"),
]


@pytest.mark.parametrize(("method", "path", "allowed"), METHOD_NOT_ALLOWED)
def test_every_405_lists_the_methods_that_work(
    service: Service, method: str, path: str, allowed: str
) -> None:
    response = service.client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    if method != "HEAD":
        assert response.json()["detail"] == f"{method} is not allowed here; allowed: {allowed}"
    for listed in allowed.split(", "):
        if listed in ("GET", "HEAD"):  # the others change things: their presence is enough
            assert service.client.request(listed, path).status_code != 405, listed


def test_an_api_key_http_cannot_carry_is_refused_at_start(folder: Path) -> None:
    for key in ("schlüssel-42", "tab\tinside", "emoji-🔑"):
        # A database that cannot be reached: should the key pass, start-up stops there.
        env = service_env(API_KEY=key, DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
        result = run_cli("serve", "--role", "api", cwd=folder, env=env)
        assert result.returncode == 2, result.stderr
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("error: setting api_key (")
        assert "WHISPER_TRANSCRIBER_API_KEY" in line and "printable ASCII" in line
        assert key not in line  # a secret is never echoed


def test_an_api_open_beyond_this_machine_without_a_key_is_warned_about(
    service: Service, folder: Path
) -> None:
    assert NO_KEY_WARNING not in service.log.read_text()  # loopback: nothing to say
    env = service_env(DATABASE_URL=f"sqlite:///{folder / 'jobs.db'}")
    for key, warned in ((None, True), ("k3y", False)):
        if key is not None:
            env["WHISPER_TRANSCRIBER_API_KEY"] = key
        with running_service(
            "--role", "api", "--host", "0.0.0.0", "--inbox", folder / "inbox",
            cwd=folder, env=env, log_name=f"open-{warned}.log",
        ) as opened:  # fmt: skip
            wait_until(
                lambda: "HTTP API on http://0.0.0.0:" in opened.log.read_text(), 30, "the server"
            )
            lines = [line for line in opened.log.read_text().splitlines() if NO_KEY_WARNING in line]
            assert len(lines) == int(warned), lines
            if warned:
                assert " WARNING " in lines[0] and "0.0.0.0" in lines[0]
                assert "WHISPER_TRANSCRIBER_API_KEY" in lines[0]
            assert httpx.get(opened.base_url + "/health").status_code == 200
            assert opened.stop() == 0
