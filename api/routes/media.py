"""A job's source file, for a browser's `<audio>`: served with Range support, and reachable
without the API key through a signed link that expires (api/signed_links.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import FileResponse
from starlette.types import Receive, Scope, Send

from whisper_transcriber.api.deps import Context, JobId
from whisper_transcriber.api.schemas import AudioLinkOut, ErrorOut
from whisper_transcriber.api.signed_links import signed_audio_link
from whisper_transcriber.db.errors import JobNotFound
from whisper_transcriber.db.values import JobRecord
from whisper_transcriber.worker.confinement import SourceRefused, open_confined, readable_path

# The names browsers expect for the containers inboxes take (watcher/filters.py). A fixed table,
# not the system's mime tables (they call .ts a Qt translation file), and nothing else: an upload
# named page.html must never come back as text/html from the API's origin.
MEDIA_TYPES = {
    ".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg", ".m4a": "audio/mp4",
    ".aac": "audio/aac", ".ogg": "audio/ogg", ".oga": "audio/ogg", ".opus": "audio/ogg",
    ".wma": "audio/x-ms-wma", ".aiff": "audio/aiff", ".aif": "audio/aiff", ".amr": "audio/amr",
    ".webm": "video/webm", ".mp4": "video/mp4", ".m4v": "video/mp4", ".mkv": "video/x-matroska",
    ".mov": "video/quicktime", ".avi": "video/x-msvideo", ".wmv": "video/x-ms-wmv",
    ".mpg": "video/mpeg", ".mpeg": "video/mpeg", ".ts": "video/mp2t", ".3gp": "video/3gpp",
}  # fmt: skip
FALLBACK_MEDIA_TYPE = "application/octet-stream"
FILE_CONTENT = {"schema": {"type": "string", "format": "binary"}}
AUDIO_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The whole file",
        "content": {kind: FILE_CONTENT for kind in ("audio/*", "video/*", FALLBACK_MEDIA_TYPE)},
    },
    206: {
        "description": "The byte range asked for (Range: bytes=START-END)",
        "content": {kind: FILE_CONTENT for kind in ("audio/*", "video/*", FALLBACK_MEDIA_TYPE)},
    },
    404: {"model": ErrorOut, "description": "No such job, or its file is no longer there"},
    410: {
        "model": ErrorOut,
        "description": "The file there is no longer the job's source, or not in an allowed folder",
    },
    416: {"description": "The range lies outside the file"},
}

router = APIRouter(tags=["jobs"])


def media_type_of(path: Path) -> str:
    return MEDIA_TYPES.get(path.suffix.lower(), FALLBACK_MEDIA_TYPE)


def source_file_of(job: JobRecord) -> Path:
    """Where the job's file is now: where its original was moved to, if it was."""
    return Path(job.original_moved_to or job.source_path)


def _job(context: Context, job_id: int) -> JobRecord:
    try:
        return context.store.get(job_id)
    except JobNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc


@router.get("/jobs/{job_id}/audio", response_class=FileResponse, responses=AUDIO_RESPONSES)
def get_audio(
    job_id: JobId,
    context: Context,
    expires: Annotated[
        int | None, Query(description="From audio-link: when the signed link expires (Unix)")
    ] = None,
    signature: Annotated[
        str | None, Query(description="From audio-link: lets the link in without the API key")
    ] = None,
) -> FileResponse:
    """The job's source file, for an `<audio>` or `<video>` element (Range requests answer 206).
    With an API key set, a browser opens it through GET /jobs/{id}/audio-link. Served only while
    it is still the job's file and inside the allowed folders: 404 when gone, 410 otherwise."""
    del expires, signature  # checked by the API key middleware, before the route
    job = _job(context, job_id)
    path = source_file_of(job)
    if job.source_removed_at is not None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"the upload was removed on {job.source_removed_at:%Y-%m-%d %H:%M} UTC, "
            "upload_retention_s after its job ended; its transcript is kept",
        )
    if not path.exists():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"the source file is no longer at {path}")
    try:
        fd = open_confined(str(path), context.confinement, trusted=False)
    except SourceRefused as exc:
        raise HTTPException(status.HTTP_410_GONE, f"not served: {exc}") from exc
    info = os.fstat(fd)
    if (info.st_size, info.st_mtime_ns) != (job.source_size, job.source_mtime_ns):
        os.close(fd)
        raise HTTPException(
            status.HTTP_410_GONE, f"not served: the file at {path} is no longer this job's source"
        )
    return _OpenFileResponse(
        fd,
        path=readable_path(fd) or path,
        stat_result=info,
        media_type=media_type_of(path),
        filename=path.name,
        content_disposition_type="inline",
        headers={"X-Content-Type-Options": "nosniff"},  # the browser takes the type as given
    )


class _OpenFileResponse(FileResponse):
    """Serves the file already opened and judged (through /proc/self/fd), whatever happens to
    its name meanwhile; closes it once answered."""

    def __init__(self, fd: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._fd = fd

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            os.close(self._fd)


@router.get(
    "/jobs/{job_id}/audio-link",
    responses={404: {"model": ErrorOut, "description": "No such job"}},
)
def get_audio_link(job_id: JobId, context: Context) -> AudioLinkOut:
    """A URL for GET /jobs/{id}/audio that needs no API key for six hours (signed with the key);
    without a key set, the plain URL."""
    _job(context, job_id)
    link = signed_audio_link(context.api_key, job_id, now=time.time())
    return AudioLinkOut(url=link.url, expires_at=link.expires_at)
