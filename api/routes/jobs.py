"""Submitting files by server path; listing, reading, cancelling and retrying jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response, status

from api.deps import Context
from api.paths import PathNotAllowed, resolve_allowed
from api.schemas import ErrorOut, JobOut, JobPage, TranscribeRequest
from db.errors import InvalidTransition, JobNotFound
from db.models import JobStatus
from db.values import JobQuery, OutputFormat
from worker.originals import requeue
from worker.outputs import render

# Content types of the transcript formats.
MEDIA_TYPES = {
    "txt": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "json": "application/json",
    "tsv": "text/tab-separated-values; charset=utf-8",
}
Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"model": ErrorOut, "description": "No such job"}}
CONFLICT: Responses = {409: {"model": ErrorOut, "description": "Not possible in the job's state"}}

router = APIRouter(tags=["jobs"])


@router.post(
    "/transcribe",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"model": JobOut, "description": "The same unchanged file already has this job"},
        403: {"description": "The path is outside the allowed folders"},
        404: {"description": "No such file"},
    },
)
def transcribe(request: TranscribeRequest, context: Context, response: Response) -> JobOut:
    """Queue a file that is already on the server (sync route: FastAPI runs it in a thread)."""
    try:
        path = resolve_allowed(request.path, context.allowed_roots)
    except PathNotAllowed as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from exc
    if not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no such file: {request.path}")
    job, created = context.store.enqueue(path, request.options(context.default_options), "api")
    if not created:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/jobs/{job.id}"
    return JobOut.from_record(job)


@router.get("/jobs", responses={400: {"model": ErrorOut, "description": "A bad cursor"}})
def list_jobs(
    context: Context,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    inbox: Annotated[str | None, Query(description="An inbox's name")] = None,
    source: Annotated[str | None, Query(description="api, upload or cli")] = None,
    since: Annotated[datetime | None, Query(description="Created at or after")] = None,
    until: Annotated[datetime | None, Query(description="Created before")] = None,
    text: Annotated[str | None, Query(description="In the file's path or its transcript")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> JobPage:
    """Jobs, newest first, a page at a time."""
    before_id = None
    if cursor is not None:
        if not cursor.isdigit():
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"not a cursor: {cursor!r}")
        before_id = int(cursor)
    origin = f"inbox:{inbox}" if inbox is not None else source
    query = JobQuery(
        status=status_, origin=origin, since=since, until=until, text=text, before_id=before_id
    )
    jobs = context.store.list_jobs(query, limit + 1)
    page, more = jobs[:limit], len(jobs) > limit
    summaries = context.store.transcript_summaries([job.id for job in page])
    return JobPage(
        items=[JobOut.from_record(job, summaries.get(job.id)) for job in page],
        next_cursor=str(page[-1].id) if more else None,
    )


@router.get("/jobs/{job_id}", responses=NOT_FOUND)
def get_job(job_id: int, context: Context) -> JobOut:
    try:
        job = context.store.get(job_id)
    except JobNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    return JobOut.from_record(job, context.store.transcript_summaries([job_id]).get(job_id))


@router.get(
    "/jobs/{job_id}/transcript",
    response_class=Response,
    responses={
        200: {"content": {media: {} for media in MEDIA_TYPES.values()}},
        404: {"model": ErrorOut, "description": "No such job, or no transcript (yet)"},
    },
)
def get_transcript(job_id: int, context: Context, format: OutputFormat = "txt") -> Response:
    """The job's transcript in one format, rendered from the database (not from the files)."""
    transcript = context.store.transcript(job_id)
    if transcript is None:
        try:
            job = context.store.get(job_id)
        except JobNotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"job {job_id} has no transcript ({job.status.value})"
        )
    return Response(render(transcript, format), media_type=MEDIA_TYPES[format])


@router.delete("/jobs/{job_id}", responses={**NOT_FOUND, **CONFLICT})
def cancel_job(job_id: int, context: Context) -> JobOut:
    """Cancel a queued or running job; a running one stops within about a second of its
    worker's next heartbeat."""
    try:
        return JobOut.from_record(context.store.cancel(job_id))
    except JobNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except InvalidTransition as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


@router.post("/jobs/{job_id}/retry", responses={**NOT_FOUND, **CONFLICT})
def retry_job(job_id: int, context: Context) -> JobOut:
    """Queue a failed or cancelled job again, with a fresh allowance of attempts."""
    try:
        return JobOut.from_record(requeue(context.store, job_id))
    except JobNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except InvalidTransition as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
