"""The callback fields every submitting endpoint takes (POST /transcribe, the OpenAI endpoints):
a URL that hears the job's events, signed as Standard Webhooks (docs/guides/automation.md)."""

from __future__ import annotations

from fastapi import HTTPException, status
from pydantic import BaseModel, Field

from whisper_transcriber.api.app_context import ApiContext
from whisper_transcriber.db.webhook_outbox import CallbackRequest, EventType

MAX_URL_CHARS = 2048


class CallbackFields(BaseModel):
    callback_url: str | None = Field(
        default=None,
        max_length=MAX_URL_CHARS,
        description="POST the job's events here (queued, started, done, failed, cancelled), "
        "signed as Standard Webhooks; a public address unless the service's callback_allow "
        "setting names it",
    )
    callback_secret: str | None = Field(
        default=None,
        max_length=200,
        description="The secret that signs them (whsec_ and base64 of 24-64 bytes); unset: the "
        "service's callback_secret setting",
    )
    callback_events: list[EventType] | None = Field(
        default=None, description="Only these events; unset: every one"
    )
    callback_transcript: bool = Field(
        default=False, description="The transcript inline in the done event (data.transcript)"
    )


CALLBACK_FIELDS = frozenset(CallbackFields.model_fields)


def callback_of(context: ApiContext, fields: CallbackFields) -> CallbackRequest | None:
    """The request's callback; 400 with the reason when it may not have it."""
    if fields.callback_url is None:
        if fields.callback_secret or fields.callback_events or fields.callback_transcript:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, "callback_* fields need a callback_url"
            )
        return None
    if context.callbacks is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "this service sends no callbacks")
    try:
        return context.callbacks.callback(
            fields.callback_url,
            fields.callback_secret,
            fields.callback_events,
            fields.callback_transcript,
        )
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
