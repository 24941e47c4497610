"""Server-sent events of job changes, so that clients follow progress without polling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from sse_starlette.event import ServerSentEvent
from sse_starlette.sse import EventSourceResponse

from whisper_transcriber.api.deps import Context
from whisper_transcriber.api.events import event_kind
from whisper_transcriber.api.schemas import JobOut
from whisper_transcriber.db.errors import QueueError
from whisper_transcriber.db.models import MAX_JOB_ID, JobStatus

router = APIRouter(tags=["jobs"])
PING_S = 15


@router.get(
    "/events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "One event per job change: event is queued, started, progress, done, "
            "failed or cancelled; data is the job as GET /jobs/{id} shows it",
        }
    },
)
async def events(
    request: Request,
    context: Context,
    job: Annotated[
        int | None, Query(ge=1, le=MAX_JOB_ID, description="Only this job's changes")
    ] = None,
) -> EventSourceResponse:
    hub = request.app.state.events

    async def stream() -> AsyncIterator[ServerSentEvent]:
        with hub.subscribe() as subscription:
            # Tells the client that every change from here on will reach it.
            yield ServerSentEvent(comment="subscribed")
            while True:
                change = await subscription.queue.get()
                if job is not None and change.id != job:
                    continue
                # As GET /jobs/{id} shows it: a finished job with its language and duration.
                summary = None
                if change.status is JobStatus.DONE:
                    try:
                        summaries = await run_in_threadpool(
                            context.store.transcript_summaries, [change.id]
                        )
                        summary = summaries.get(change.id)
                    except QueueError:  # the event still goes out, without them
                        pass
                yield ServerSentEvent(
                    data=JobOut.from_record(change, summary).model_dump_json(),
                    event=event_kind(change),
                    id=f"{change.id}-{change.updated_at.timestamp():.6f}",
                )

    return EventSourceResponse(stream(), ping=PING_S)
