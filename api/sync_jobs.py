"""For endpoints that answer with the transcript (/asr, OpenAI's): receive the upload, queue
its job like any other, and await the job's end on the change feed (the loop never blocks)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from functools import partial
from typing import Any, TypeVar

from fastapi import HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from whisper_transcriber.api.app_context import ApiContext
from whisper_transcriber.api.events import EventHub
from whisper_transcriber.api.uploads import Upload, UploadError, receive_upload
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.values import UPLOAD_ORIGIN, JobOptions, JobRecord
from whisper_transcriber.db.webhook_outbox import CallbackRequest

T = TypeVar("T")


async def enqueue_upload(
    context: ApiContext,
    upload: Upload,
    options: JobOptions,
    *,
    force: bool = False,
    callback: CallbackRequest | None = None,
) -> tuple[JobRecord, bool]:
    """The upload's job, and whether it is new; when the same work already has one, that job
    (created=False), and this copy of the file goes."""
    assert upload.path is not None
    job, created = await run_in_threadpool(
        partial(
            context.store.enqueue,
            upload.path,
            options,
            UPLOAD_ORIGIN,
            force=force,
            content_digest=upload.sha256,
            callback=callback,
        )
    )
    if not created:
        await run_in_threadpool(upload.discard)
    return job, created


def multipart_body(
    file_field: str, fields: dict[str, Any] | None = None, required: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The OpenAPI requestBody of an upload endpoint (the route reads the body itself)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            file_field: {"type": "string", "format": "binary"},
                            **(fields or {}),
                        },
                        "required": [file_field, *required],
                    }
                }
            },
        }
    }


async def receive(request: Request, context: ApiContext, file_field: str) -> Upload:
    """The upload on disk; 400 for a malformed one (ContentTooLarge past a limit: 413)."""
    try:
        return await receive_upload(
            request.stream(),
            request.headers.get("content-type", ""),
            context.uploads_dir,
            file_field,
            context.max_upload_bytes,
        )
    except UploadError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc


async def _client_left(request: Request) -> None:
    """Returns when the client closes its connection (the body was read: nothing else comes)."""
    while (await request.receive())["type"] != "http.disconnect":
        await asyncio.sleep(0.1)


async def _unless_client_leaves(request: Request, waiting: Coroutine[Any, Any, T]) -> T:
    """What `waiting` gives, unless the client leaves first: ClientDisconnect then."""
    answer = asyncio.ensure_future(waiting)
    gone = asyncio.ensure_future(_client_left(request))
    try:
        await asyncio.wait({answer, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (answer, gone):
            task.cancel()
    if answer.done() and not answer.cancelled():
        return answer.result()
    raise ClientDisconnect


async def run_and_wait(
    request: Request,
    context: ApiContext,
    upload: Upload,
    options: JobOptions,
    callback: CallbackRequest | None = None,
) -> JobRecord:
    """The job, done; 422 with its reason when it failed, 504 past the wait limit.

    The same content with the same options as an earlier request (a client that retries after
    its own time-out) waits on that request's job, queued, running or done: it costs nothing."""
    job, _ = await enqueue_upload(context, upload, options, callback=callback)
    hub: EventHub = request.app.state.events
    try:
        ended = await asyncio.wait_for(
            _unless_client_leaves(request, hub.wait_until_final(context.store, job.id)),
            context.sync_wait_s,
        )
    except ClientDisconnect as exc:  # nobody waits for the answer: stop holding a task for it
        raise ClientDisconnect(
            f"while job {job.id} ran; the job goes on (GET /jobs/{job.id})"
        ) from exc
    except TimeoutError as exc:
        raise HTTPException(
            status.HTTP_504_GATEWAY_TIMEOUT,
            f"job {job.id} did not finish within {context.sync_wait_s:g} s; follow it at "
            f"/jobs/{job.id}",
        ) from exc
    if ended.status is not JobStatus.DONE:
        reason = ended.error or ended.note or "no reason given"
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"job {ended.id} {ended.status.value}: {reason}"
        )
    return ended
