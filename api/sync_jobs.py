"""For endpoints that answer with the transcript (/asr, OpenAI's): receive the upload, queue
its job like any other, and await the job's end on the change feed (the loop never blocks)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool

from api.app_context import ApiContext
from api.events import EventHub
from api.uploads import Upload, UploadError, receive_upload
from db.models import JobStatus
from db.values import JobOptions, JobRecord


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


async def run_and_wait(
    request: Request, context: ApiContext, path: Path, options: JobOptions
) -> JobRecord:
    """The job, done; 422 with its reason when it failed, 504 past the wait limit."""
    job, _ = await run_in_threadpool(context.store.enqueue, path, options, "upload")
    hub: EventHub = request.app.state.events
    try:
        ended = await asyncio.wait_for(
            hub.wait_until_final(context.store, job.id), context.sync_wait_s
        )
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
