"""Clients that go away mid-request, over real sockets against the real service: an upload cut
short (closed, and reset), a JSON body never finished, an /events stream closed, a synchronous
/asr given up while its job waits. Each is one log line, never a traceback; nothing is left in
the uploads folder; the /asr request stops waiting (so SIGTERM stops the service at once)."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest

from tests.helpers.media import FIXTURES, place
from tests.helpers.sockets import Raw, api_service, events_stream, multipart
from tests.helpers.waiting import wait_until

WAIT_S = 30


def reset(raw: Raw) -> None:
    """Close with a TCP reset rather than a FIN."""
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()


def upload_head(path: bytes, field: bytes, file_bytes: bytes) -> tuple[bytes, bytes]:
    """multipart's request, to another path and under another field name."""
    head, body = multipart(file_bytes)
    body = body.replace(b'name="file"', b'name="' + field + b'"')
    head = head.replace(b"POST /transcribe ", b"POST " + path + b" ")
    head = head.replace(
        b"Content-Length: ", b"Content-Length: " + str(len(body)).encode() + b"\r\nX-Was: "
    )
    return head, body


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    place(FIXTURES / "speech_a.wav", tmp_path / "inbox")
    return tmp_path


def test_clients_that_go_away_are_one_line_each(folder: Path) -> None:
    with api_service(folder) as service:
        port = int(service.base_url.rsplit(":", 1)[1])
        log = service.log

        def gone_lines() -> list[str]:
            return [line for line in log.read_text().splitlines() if "client went away" in line]

        head, body = multipart(bytes(2 * 1024 * 1024))
        cut = Raw(port, head + body[: 256 * 1024])
        wait_until(lambda: any((folder / "data" / "uploads").rglob("*.part")), WAIT_S, "a part")
        cut.close()
        wait_until(lambda: len(gone_lines()) == 1, WAIT_S, "the cut upload's line")
        reset(Raw(port, head + body[: 256 * 1024]))
        wait_until(lambda: len(gone_lines()) == 2, WAIT_S, "the reset upload's line")

        unfinished = (
            b"POST /transcribe HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"path": "'
        )
        Raw(port, unfinished).close()
        wait_until(lambda: len(gone_lines()) == 3, WAIT_S, "the unfinished body's line")

        events = events_stream(port)
        reset(events)

        wav = (FIXTURES / "speech_a.wav").read_bytes()
        head, body = upload_head(b"/asr", b"audio_file", wav)
        asr = Raw(port, head + body)
        wait_until(
            lambda: service.client.get("/jobs").json()["items"], WAIT_S, "the /asr job queued"
        )
        asr.close()  # no worker here: it would have waited for hours
        wait_until(lambda: len(gone_lines()) == 4, WAIT_S, "the /asr line")
        assert service.client.get("/health").status_code == 200
    lines = gone_lines()
    assert all(" INFO " in line for line in lines), lines
    assert lines[0].endswith("POST /transcribe: the client went away"), lines
    assert lines[3].endswith(
        "POST /asr: the client went away: while job 1 ran; the job goes on (GET /jobs/1)"
    ), lines
    text = log.read_text()
    assert "Traceback" not in text and " ERROR " not in text
    # The cut uploads left nothing; the /asr upload is its job's source, queued.
    assert [p.name for p in (folder / "data" / "uploads").rglob("*") if p.is_file()] == ["slow.wav"]
