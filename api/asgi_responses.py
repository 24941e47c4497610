"""An error answered by a pure ASGI middleware, before the app: JSON with a readable `detail`, as
the app's own errors (api/errors.py)."""

from __future__ import annotations

import json

from starlette.types import Send


async def send_error(
    send: Send, status: int, detail: str, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
