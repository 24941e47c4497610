"""Slow and idle clients against a real service over real sockets: hundreds of sockets that send
nothing, heads sent a byte at a time, a body that stops, a flood past the connection cap. The
service closes what it must, keeps what works (a long upload, /events) and /health answers."""

from __future__ import annotations

from pathlib import Path

import httpx
import psutil
import pytest

from tests.helpers.media import FIXTURES, place
from tests.helpers.service import Service
from tests.helpers.sockets import Raw, api_service, events_stream, multipart
from tests.helpers.waiting import wait_until

IDLE_SOCKETS = 300
SLACK_S = 30  # beyond a configured timeout, how long a wait may take on a loaded machine


def established(service: Service) -> int:
    """TCP connections the service's process holds on its port."""
    port = int(service.base_url.rsplit(":", 1)[1])
    return sum(
        1
        for c in psutil.Process(service.process.pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    place(FIXTURES / "speech_a.wav", tmp_path / "inbox")
    return tmp_path


HEADER_TIMEOUT_S = 2.0
KEEPALIVE_TIMEOUT_S = 2.0
BODY_IDLE_TIMEOUT_S = 3.0


def test_idle_and_slow_clients_are_closed_while_uploads_and_events_go_on(folder: Path) -> None:
    with api_service(
        folder,
        HTTP_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S),
        HTTP_KEEPALIVE_TIMEOUT_S=str(KEEPALIVE_TIMEOUT_S),
        HTTP_BODY_IDLE_TIMEOUT_S=str(BODY_IDLE_TIMEOUT_S),
    ) as service:
        port = int(service.base_url.rsplit(":", 1)[1])
        events = events_stream(port)
        head, body = multipart(bytes(256 * 1024))
        upload = Raw(port, head + body[:1024])
        sent = 1024
        kept_alive = Raw(port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        stalled = Raw(port, head + body[:10])  # a body that stops
        idle = [Raw(port) for _ in range(IDLE_SOCKETS)]  # connect, send nothing
        dribblers = [Raw(port, b"GET /health HTTP/1.1\r\n") for _ in range(5)]

        # Through the flood, a new client is answered at once.
        assert httpx.get(service.base_url + "/health", timeout=10).status_code == 200

        def flood_closed() -> bool:
            nonlocal sent
            # While the flood lasts, the upload goes on a little at a time; each dribbler adds
            # a header byte; neither ever completes.
            step = min(512, len(body) - 100 - sent)
            if step > 0:
                upload.send(body[sent : sent + step])
                sent += step
            for dribbler in dribblers:
                if not dribbler.poll():
                    dribbler.send(b"x")
            return all(raw.poll() for raw in idle) and all(d.closed for d in dribblers)

        wait_until(flood_closed, HEADER_TIMEOUT_S + SLACK_S, "idle and dribbling sockets closed")
        assert all(d.received == b"" for d in dribblers)  # closed, never answered
        wait_until(kept_alive.poll, KEEPALIVE_TIMEOUT_S + SLACK_S, "the kept-alive one closed")
        assert kept_alive.received.startswith(b"HTTP/1.1 200 ")
        wait_until(stalled.poll, BODY_IDLE_TIMEOUT_S + SLACK_S, "the stalled upload closed")

        # The upload outlived the header timeout and every idle socket: it completes.
        upload.send(body[sent:])
        wait_until(lambda: upload.answered(b"\r\n\r\n{"), 30, "the upload's answer")
        assert upload.received.startswith(b"HTTP/1.1 202 "), upload.received[:300]
        # The event stream, open all along, still carries events: the upload's job.
        wait_until(lambda: events.answered(b"event: queued"), 30, "the queued event")
        assert not events.closed
        assert b"slow.wav" in events.received
        assert httpx.get(service.base_url + "/jobs").json()["items"][0]["status"] == "queued"
        for raw in [events, upload, kept_alive, stalled, *idle, *dribblers]:
            raw.close()


MAX_CONNECTIONS = 50


def test_a_flood_past_the_connection_cap_closes_idle_sockets_first(folder: Path) -> None:
    with api_service(
        folder, HTTP_MAX_CONNECTIONS=str(MAX_CONNECTIONS), HTTP_HEADER_TIMEOUT_S="600"
    ) as service:
        port = int(service.base_url.rsplit(":", 1)[1])
        events = [events_stream(port)]
        idle = [Raw(port) for _ in range(IDLE_SOCKETS)]

        assert httpx.get(service.base_url + "/health", timeout=10).status_code == 200
        # Each connection past the cap closed the one that had waited longest: the flood's
        # first ones. The event stream is busy, never a candidate.
        wait_until(
            lambda: sum(raw.poll() for raw in idle) >= IDLE_SOCKETS - (MAX_CONNECTIONS - 1),
            SLACK_S,
            "idle sockets past the cap closed",
        )
        assert established(service) <= MAX_CONNECTIONS
        assert not any(raw.closed for raw in idle[-(MAX_CONNECTIONS - 2) :])  # the newest stay
        submitted = service.client.post(
            "/transcribe", json={"path": str(folder / "inbox" / "speech_a.wav")}
        )
        assert submitted.status_code == 202, submitted.text
        wait_until(lambda: events[0].answered(b"event: queued"), 30, "the queued event")
        assert not events[0].closed
        for raw in idle:
            raw.close()

        # Every connection busy (event streams): a new one is told so, but /health answers.
        events += [events_stream(port) for _ in range(MAX_CONNECTIONS - 1)]
        wait_until(lambda: established(service) == MAX_CONNECTIONS, SLACK_S, "only the streams")
        busy = httpx.get(service.base_url + "/jobs", timeout=10)
        assert busy.status_code == 503
        assert "http_max_connections" in busy.json()["detail"]
        assert httpx.get(service.base_url + "/health", timeout=10).status_code == 200
        assert not any(stream.poll() for stream in events)
        for stream in events:
            stream.close()
