"""How much a request may carry, and the middleware that refuses a body past it (413).

A JSON body holds a path and a few options; a multipart form holds one file and a few short
option fields. Anything larger is a mistake or an attack, refused before it is read whole: a
declared Content-Length past the limit is answered before a byte of the body is read, and a
chunked body is counted as it arrives. Uploads have their own finer limits (api/uploads.py).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from whisper_transcriber.api.asgi_responses import send_error
from whisper_transcriber.db.values import MAX_PROMPT_CHARS

# A path (at most 4096 bytes on Linux) and the options, prompt included, escaped: 64 KiB is ample.
MAX_JSON_BODY_BYTES = 64 * 1024
# One option field of a form; the longest, the prompt, is far shorter (MAX_PROMPT_CHARS).
MAX_FORM_FIELD_BYTES = 16 * 1024
# Parts of one form: the file and its options (OpenAI's clients send about ten).
MAX_FORM_PARTS = 32
# A form's option fields and part headers together, and what a form adds around its file.
FORM_OVERHEAD_BYTES = 256 * 1024


class ContentTooLarge(Exception):
    """A request, or a part of it, past its limit: 413 with this message (api/errors.py)."""


def check_prompt(prompt: str | None, field: str) -> None:
    """ContentTooLarge for a prompt longer than the model can use."""
    if prompt is not None and len(prompt) > MAX_PROMPT_CHARS:
        raise ContentTooLarge(
            f"{field} is {len(prompt)} characters long; the limit is {MAX_PROMPT_CHARS}, as "
            "Whisper reads at most 223 tokens of a prompt"
        )


def is_form(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "multipart/form-data"


class BodyLimitMiddleware:
    """A request body past its limit is refused with 413: a form past the largest upload plus
    FORM_OVERHEAD_BYTES, any other body past MAX_JSON_BODY_BYTES."""

    def __init__(self, app: ASGIApp, max_upload_bytes: int) -> None:
        self.app = app
        self.max_form_bytes = max_upload_bytes + FORM_OVERHEAD_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        form = is_form(headers.get(b"content-type", b"").decode("latin-1"))
        limit = self.max_form_bytes if form else MAX_JSON_BODY_BYTES
        what = "the upload" if form else "the request body"
        reason = f"{what} is larger than the limit of {limit} bytes"
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await send_error(send, 413, reason)  # nothing read, nothing stored
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # a chunked body, which declares no length
                    raise ContentTooLarge(reason)
            return message

        await self.app(scope, counted, send)
