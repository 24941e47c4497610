"""uvicorn's h11 protocol with the limits a server open to a network needs.

uvicorn closes a connection only when it idles between two requests (its keep-alive timeout): one
that connects and sends nothing, or sends its request head a byte at a time, is kept for ever,
and a few hundred of them use up the process's sockets. Here every connection also has:

- a header timeout: a request head (request line and headers) must arrive in full within
  header_timeout_s of the connection opening, or of the first byte of a kept-alive connection's
  next request; else the connection is closed. It never runs while a body arrives or a response
  streams (/events, long uploads).
- a body idle timeout: a request body that stops arriving for body_idle_timeout_s, while the
  server is ready to read it, closes the connection; an upload goes on as long as bytes flow.
- a linger: a response sent before its request's body was read (a 401, a 413) lets the rest of
  the body be read and dropped for keepalive_timeout_s, so that the client reads the answer
  rather than a reset; then the connection is closed.
- a cap: at max_connections, a new connection closes the one that has waited longest for a
  request head (a kept-alive or a silent one), so that a flood of idle sockets cannot lock out
  /health or anyone else; when every connection is busy with a request, the new one is answered
  503, unless it asks for /health (a busy service is alive).

h11 rather than httptools: its state machine tells when a request head is complete, and its
speed is nothing beside a transcription's.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import h11
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from whisper_transcriber.api.asgi_responses import send_error

# A request line and its headers. /asr takes its prompt in the query: 2,000 characters,
# percent-encoded UTF-8, are up to 18 KB, past h11's default of 16 KiB.
MAX_HEAD_BYTES = 64 * 1024

# Answered also past the cap: a liveness probe must not restart a service for being busy.
ALWAYS_ANSWERED = frozenset({"/health"})

Timing = Literal["head", "body", "linger"]


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float
    keepalive_timeout_s: float
    body_idle_timeout_s: float
    max_connections: int


class GuardedH11Protocol(H11Protocol):
    """One per connection; `guarded_protocol` makes the class for one server."""

    limits: ClassVar[ConnectionLimits]
    # This server's connections that wait for a request head, longest first: closed first at
    # the cap.
    waiting: ClassVar[OrderedDict[GuardedH11Protocol, None]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout_keep_alive = self.limits.keepalive_timeout_s  # type: ignore[assignment]
        self._timer: asyncio.TimerHandle | None = None
        self._timing: Timing | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        full = len(self.connections) >= self.limits.max_connections
        if full and self.waiting:
            oldest, _ = self.waiting.popitem(last=False)
            oldest._close()
            full = False
        super().connection_made(transport)
        if full:
            self.app = _busy(self.app)
        self.waiting[self] = None
        self._arm("head", self.limits.header_timeout_s)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow(arrived=True)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow(arrived=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        super().connection_lost(exc)

    def _follow(self, *, arrived: bool) -> None:
        """Keep the one timer that fits where the request now is."""
        if self.transport.is_closing():
            self._forget()
            return
        state = self.conn.their_state
        if state is h11.IDLE:  # between requests, or a head under way
            self.waiting[self] = None
            if not arrived:
                self._stop()  # a response ended: uvicorn's keep-alive timer runs now
            elif self._timing != "head":  # the first bytes of the next request's head
                self._arm("head", self.limits.header_timeout_s)
            return
        self.waiting.pop(self, None)
        if state is h11.SEND_BODY and self.cycle.response_complete:
            if self._timing != "linger":  # answered early: drop the rest of the body a while
                self._arm("linger", self.limits.keepalive_timeout_s)
        elif state is h11.SEND_BODY:
            self._arm("body", self.limits.body_idle_timeout_s)  # again at every arrival
        else:
            self._stop()  # the whole request is in: the response takes as long as it takes

    def _arm(self, timing: Timing, delay_s: float) -> None:
        self._stop()
        self._timing = timing
        self._timer = self.loop.call_later(delay_s, self._expired)

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timing = None, None

    def _expired(self) -> None:
        timing, self._timer = self._timing, None
        waiting_for_us = self.flow.read_paused or (
            self.cycle is not None and self.cycle.waiting_for_100_continue
        )
        if timing == "body" and waiting_for_us:  # the app, not the client, is the slow one
            self._arm("body", self.limits.body_idle_timeout_s)
            return
        self._close()

    def _forget(self) -> None:
        self._stop()
        self.waiting.pop(self, None)

    def _close(self) -> None:
        self._forget()
        self.connections.discard(self)  # no longer counts towards the cap
        if not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    """The protocol class for one server: its connections share one list of waiting ones."""

    class ServerProtocol(GuardedH11Protocol):
        pass

    ServerProtocol.limits = limits
    ServerProtocol.waiting = OrderedDict()
    return ServerProtocol


def _busy(app: ASGIApp) -> ASGIApp:
    """The app for a connection past the cap while every other one is busy."""

    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in ALWAYS_ANSWERED:
            await app(scope, receive, send)
            return
        await send_error(
            send,
            503,
            "every connection is busy (the http_max_connections setting); try again",
            ((b"connection", b"close"), (b"retry-after", b"1")),
        )

    return answer
