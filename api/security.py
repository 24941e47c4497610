"""The API key: when one is set, every request but GET /health and the dashboard's static page
must carry it.

Accepted as `Authorization: Bearer KEY` (what OpenAI clients send) or `X-API-Key: KEY`, compared
in constant time. A pure ASGI middleware, so that it guards everything the app serves (the
OpenAPI document and docs included), not only the routes that remember to ask. One more way in:
GET /jobs/ID/audio with an unexpired signed link (api/signed_links.py), for `<audio src>`.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from whisper_transcriber.api.asgi_responses import send_error
from whisper_transcriber.api.signed_links import is_signed_audio_request

OPEN_PATHS = frozenset({"/health", "/"})
# The dashboard's static files: the page itself asks for the key before it shows anything.
# Media servers' notifications check their own token, or the key (api/routes/media_servers.py).
OPEN_PREFIXES = ("/ui/", "/media-servers/")
UNAUTHORIZED = {
    "description": "No API key, or a wrong one",
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"detail": {"type": "string"}}}
        }
    },
}


def presented_key(headers: dict[bytes, bytes]) -> str | None:
    authorization = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    key = headers.get(b"x-api-key", b"").decode("latin-1").strip()
    return key or None


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.api_key = api_key
        self.expected = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        if self._signed(scope):  # a signed link to a job's audio, for <audio src>
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = presented_key(headers)
        if given is not None and hmac.compare_digest(given.encode(), self.expected):
            await self.app(scope, receive, send)
            return
        detail = "an API key is required" if given is None else "the API key is wrong"
        await send_error(send, 401, detail, ((b"www-authenticate", b"Bearer"),))

    def _signed(self, scope: Scope) -> bool:
        return scope["method"] in ("GET", "HEAD") and is_signed_audio_request(
            self.api_key, scope["path"], scope.get("query_string", b""), time.time()
        )


def security_schemes() -> dict[str, Any]:
    """For the OpenAPI document: both ways of presenting the key."""
    return {
        "bearer": {"type": "http", "scheme": "bearer"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    }
