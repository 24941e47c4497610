"""The service at a glance, as JSON: this instance's pool, every instance's registered workers,
the queue, and every inbox's scan."""

from __future__ import annotations

from fastapi import APIRouter

from whisper_transcriber.api.deps import Context
from whisper_transcriber.api.schemas import ErrorOut, StatusOut
from whisper_transcriber.db.inbox_scans import InboxScans

router = APIRouter(tags=["operations"])


@router.get(
    "/status",
    responses={503: {"model": ErrorOut, "description": "The database is unavailable"}},
)
def status(context: Context) -> StatusOut:
    """Jobs, totals and inboxes come from the database, so any instance answers for all of
    them (a split `--role api` watches nothing itself); `workers` is this instance's own pool,
    `instances` every instance's workers from the registry."""
    store = context.store
    return StatusOut.of(
        store.stats(),
        InboxScans(store).latest(),
        context.workers,
        context.worker_registry().workers(),
    )
