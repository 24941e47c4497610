"""A real webhook receiver for tests: an HTTP server on 127.0.0.1 that checks each delivery's
Standard Webhooks signature with the specification's own library (standardwebhooks), records it,
and answers as the test says (200, an error status, or not until released)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool

    @property
    def message_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def payload(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded

    @property
    def event(self) -> str:
        return str(self.payload["type"])


class Receiver:
    def __init__(self, secret: str, port: int = 0) -> None:
        self.secret = secret
        self.received: list[Received] = []
        self.answer_status = 200
        self.hold = threading.Event()  # set: requests wait until release() before answering
        self.held = threading.Event()  # a request is being held
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def release(self) -> None:
        self._released.set()

    def events(self, job_id: int | None = None) -> list[str]:
        with self._lock:
            return [
                r.event
                for r in self.received
                if job_id is None or r.payload["data"]["id"] == job_id
            ]

    def all(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    Webhook(receiver.secret).verify(body, headers)
                    verified = True
                except WebhookVerificationError:
                    verified = False
                with receiver._lock:  # received, whatever becomes of the answer
                    receiver.received.append(Received(self.path, headers, body, verified))
                if receiver.hold.is_set():
                    receiver.held.set()
                    receiver._released.wait(120)
                status = receiver.answer_status if verified else 401
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        return Handler


@contextmanager
def receiving(secret: str, port: int = 0) -> Iterator[Receiver]:
    receiver = Receiver(secret, port)
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
