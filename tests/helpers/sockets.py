"""Sockets driven by hand against a real service: a raw client, an /events stream, a multipart
upload's head and body, and the API alone on a SQLite file."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers.service import Service, running_service, service_env
from tests.helpers.waiting import wait_until


class Raw:
    """A client socket driven by hand: what it sent, what came back, whether it was closed."""

    def __init__(self, port: int, head: bytes = b"") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setblocking(False)
        self.received = b""
        self.closed = False
        if head:
            self.send(head)

    def send(self, data: bytes) -> None:
        self.sock.settimeout(10)
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):  # the service closed it
            self.closed = True
        finally:
            self.sock.setblocking(False)

    def answered(self, marker: bytes) -> bool:
        """Whether marker has arrived (or the connection was closed: nothing more will)."""
        closed = self.poll()
        return marker in self.received or closed

    def poll(self) -> bool:
        """Read what arrived; True once the service has closed the connection."""
        while not self.closed:
            try:
                chunk = self.sock.recv(65536)
            except BlockingIOError:
                break
            except (ConnectionResetError, BrokenPipeError):
                self.closed = True
                break
            if not chunk:
                self.closed = True
            self.received += chunk
        return self.closed

    def close(self) -> None:
        self.sock.close()


def events_stream(port: int) -> Raw:
    stream = Raw(port, b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    wait_until(lambda: stream.answered(b": subscribed"), 30, "/events to answer")
    assert not stream.closed, stream.received
    return stream


def multipart(file_bytes: bytes) -> tuple[bytes, bytes]:
    """(the head of a POST /transcribe upload, its body)."""
    boundary = b"slowupload"
    body = (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="file"; filename="slow.wav"\r\n\r\n'
        + file_bytes
        + b"\r\n--" + boundary + b"--\r\n"
    )  # fmt: skip
    head = (
        b"POST /transcribe HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: multipart/form-data; boundary=" + boundary + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )  # fmt: skip
    return head, body


@contextmanager
def api_service(folder: Path, **settings: str) -> Iterator[Service]:
    """The API alone (no workers: jobs stay queued), on a SQLite file."""
    env = service_env(DATABASE_URL=f"sqlite:///{folder / 'jobs.db'}", **settings)
    with running_service("--role", "api", "--inbox", folder / "inbox", cwd=folder, env=env) as s:
        yield s
        assert s.stop() == 0
