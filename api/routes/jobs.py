"""Submitting files by server path, and reading jobs back."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status

from api.deps import Context
from api.paths import PathNotAllowed, resolve_allowed
from api.schemas import JobOut, TranscribeRequest
from db.errors import JobNotFound

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


@router.get("/jobs/{job_id}", responses={404: {"description": "No such job"}})
def get_job(job_id: int, context: Context) -> JobOut:
    try:
        return JobOut.from_record(context.store.get(job_id))
    except JobNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
