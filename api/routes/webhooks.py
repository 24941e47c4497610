"""The webhooks' deliveries: what was sent where, each attempt's answer, and sending a failed one
again (GET /webhooks/deliveries, POST /webhooks/deliveries/{id}/resend)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from whisper_transcriber.api.deps import Context
from whisper_transcriber.api.schemas import ErrorOut
from whisper_transcriber.db.errors import InvalidTransition
from whisper_transcriber.db.models import MAX_JOB_ID
from whisper_transcriber.db.webhook_outbox import (
    Delivery,
    DeliveryNotFound,
    DeliveryStatus,
    shown_url,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

DeliveryId = Annotated[int, Path(ge=1, le=MAX_JOB_ID, description="A delivery's id")]


class AttemptOut(BaseModel):
    at: datetime
    attempt: int
    status: int | None = Field(description="The receiver's HTTP status; null: no answer")
    error: str | None = Field(description="Why it did not count as delivered; null: delivered")
    answer: str = Field(description="The start of the receiver's answer")


class DeliveryOut(BaseModel):
    id: int
    message_id: str = Field(description="The webhook-id header, the same at every attempt")
    job_id: int | None
    event: str = Field(description="queued, started, done, failed or cancelled")
    subscription: str = Field(description="service:NAME (the webhooks setting) or request")
    url: str = Field(
        description="Where it goes: a request's callback as given, a webhooks setting's "
        "receiver by its origin only (its URL may be a credential)"
    )
    status: DeliveryStatus = Field(description="pending, delivered or failed (given up)")
    attempts: int
    next_attempt_at: datetime | None = Field(description="When pending: the next attempt")
    give_up_at: datetime = Field(description="A pending delivery is failed past this")
    last_status: int | None
    last_error: str | None
    history: list[AttemptOut] = Field(description="The latest attempts, oldest first")
    created_at: datetime
    finished_at: datetime | None
    body: Any = Field(default=None, description="What is sent (GET of one delivery only)")

    @classmethod
    def of(cls, delivery: Delivery, *, with_body: bool = False) -> DeliveryOut:
        return cls(
            id=delivery.id,
            message_id=delivery.message_id,
            job_id=delivery.job_id,
            event=delivery.event,
            subscription=delivery.subscription,
            url=shown_url(delivery),
            status=delivery.status,
            attempts=delivery.attempts,
            next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
            give_up_at=delivery.give_up_at,
            last_status=delivery.last_status,
            last_error=delivery.last_error,
            history=[AttemptOut.model_validate(h) for h in delivery.history],
            created_at=delivery.created_at,
            finished_at=delivery.finished_at,
            body=json.loads(delivery.body) if with_body else None,
        )


NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such delivery"}
}


@router.get("/deliveries")
def list_deliveries(
    context: Context,
    status_: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
    job_id: Annotated[int | None, Query(ge=1, le=MAX_JOB_ID)] = None,
    before_id: Annotated[
        int | None, Query(ge=1, le=MAX_JOB_ID, description="Older than this delivery (paging)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[DeliveryOut]:
    """Deliveries of job events to webhooks, newest first."""
    found = context.webhook_outbox().deliveries(
        status=status_, job_id=job_id, before_id=before_id, limit=limit
    )
    return [DeliveryOut.of(d) for d in found]


@router.get("/deliveries/{delivery_id}", responses=NOT_FOUND)
def get_delivery(delivery_id: DeliveryId, context: Context) -> DeliveryOut:
    """One delivery with its body."""
    try:
        return DeliveryOut.of(context.webhook_outbox().get(delivery_id), with_body=True)
    except DeliveryNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc


@router.post(
    "/deliveries/{delivery_id}/resend",
    responses={**NOT_FOUND, 409: {"model": ErrorOut, "description": "Not a failed delivery"}},
)
async def resend_delivery(delivery_id: DeliveryId, context: Context) -> DeliveryOut:
    """Send a failed delivery again: the same message (id and body), tried for as long again
    as the webhook_retry_s setting says."""
    outbox = context.webhook_outbox()
    try:
        delivery = await run_in_threadpool(outbox.resend, delivery_id, context.webhook_retry_s)
    except DeliveryNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except InvalidTransition as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return DeliveryOut.of(delivery)
