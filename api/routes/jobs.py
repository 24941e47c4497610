"""Submitting files by server path; listing, reading, cancelling and retrying jobs."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from whisper_transcriber.api.callbacks import callback_of
from whisper_transcriber.api.deps import Context, JobId, Moment
from whisper_transcriber.api.limits import ContentTooLarge, check_prompt
from whisper_transcriber.api.paths import PathNotAllowed, resolve_allowed
from whisper_transcriber.api.routes.models import require_known_model
from whisper_transcriber.api.schemas import (
    ErrorOut,
    JobOut,
    JobPage,
    OptionsIn,
    SpeakerNamesIn,
    SpeakersOut,
    TranscribeRequest,
)
from whisper_transcriber.api.sync_jobs import enqueue_upload
from whisper_transcriber.api.uploads import UploadError, receive_upload
from whisper_transcriber.db.errors import InvalidTransition, JobNotFound, UnstorablePath
from whisper_transcriber.db.identity import looks_the_same
from whisper_transcriber.db.models import MAX_JOB_ID, JobStatus
from whisper_transcriber.db.speaker_names import NoTranscript, SpeakerNameError, SpeakerNames
from whisper_transcriber.db.transcript import Transcript
from whisper_transcriber.db.values import (
    API_ORIGIN,
    OUTPUT_FORMATS,
    JobQuery,
    JobRecord,
    OutputFormat,
    inbox_origin,
)
from whisper_transcriber.db.webhook_outbox import EVENT_TYPES
from whisper_transcriber.watcher.originals import bring_back_original
from whisper_transcriber.worker.outputs import rendered

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


def _not_null(spec: dict[str, Any]) -> dict[str, Any]:
    """A field's schema without its null alternative: a form field is present or absent."""
    choices = [choice for choice in spec.get("anyOf", ()) if choice.get("type") != "null"]
    if len(choices) == 1:
        return {**{k: v for k, v in spec.items() if k not in ("anyOf", "default")}, **choices[0]}
    return spec


def _transcribe_body_schema() -> dict[str, Any]:
    """Both bodies POST /transcribe takes, for the OpenAPI document (the route reads the body
    itself, since FastAPI binds one content type per route)."""
    options = OptionsIn.model_json_schema()["properties"]
    form = {name: _not_null(spec) for name, spec in options.items()}
    names = "|".join(OUTPUT_FORMATS)
    form["formats"] = {
        "type": "string",
        "pattern": f"^({names})(,({names}))*$",
        "description": f"Comma list: {','.join(OUTPUT_FORMATS)}",
    }
    events = "|".join(EVENT_TYPES)
    form["callback_events"] = {
        "type": "string",
        "pattern": f"^({events})(,({events}))*$",
        "description": f"Comma list: {','.join(EVENT_TYPES)}",
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": TranscribeRequest.model_json_schema()},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}, **form},
                        "required": ["file"],
                        "additionalProperties": False,
                    }
                },
            },
        }
    }


@router.post(
    "/transcribe",
    status_code=status.HTTP_202_ACCEPTED,
    openapi_extra=_transcribe_body_schema(),
    responses={
        200: {"model": JobOut, "description": "The same unchanged file already has this job"},
        400: {"model": ErrorOut, "description": "A malformed body"},
        403: {"model": ErrorOut, "description": "The path is outside the allowed folders"},
        404: {"model": ErrorOut, "description": "No such file"},
        412: {
            "model": ErrorOut,
            "description": "expected_size or expected_mtime_ns was given and the server's file "
            "at the path differs: no job was created or changed",
        },
        413: {
            "model": ErrorOut,
            "description": "The body, the upload, a field or the prompt is larger than its limit",
        },
        422: {"model": ErrorOut, "description": "Invalid options or fields"},
    },
)
async def transcribe(request: Request, context: Context, response: Response) -> JobOut:
    """Queue a file already on the server (JSON with its path) or an uploaded one (multipart,
    streamed into the uploads folder). The same file (or uploaded content) with the same options
    answers its existing job (200) unless `force` is set; a new job is 201.

    A client on another machine sends a path with `expected_size` and `expected_mtime_ns`, its
    own file's: when the server's file at that path is another one (size, or modification time
    at the coarser resolution of the two), the answer is 412 and nothing is recorded, so the
    client uploads its file instead and the server's file stays free for its inbox."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        job, created = await _uploaded(request, context, content_type)
    else:
        job, created = await _by_path(request, context)
    if not created:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/jobs/{job.id}"
    if created:  # a new job has no transcript to summarise yet
        return JobOut.from_record(job)
    summary = await run_in_threadpool(context.store.transcript_summaries, [job.id])
    return JobOut.from_record(job, summary.get(job.id))


async def _by_path(request: Request, context: Context) -> tuple[JobRecord, bool]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"the body is not JSON: {exc}") from exc
    try:
        given = TranscribeRequest.model_validate(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from exc
    check_prompt(given.initial_prompt, "initial_prompt")
    check_prompt(given.hotwords, "hotwords")
    try:
        path = resolve_allowed(given.path, context.allowed_roots)
    except PathNotAllowed as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from exc
    except ValueError as exc:  # a NUL byte, say: no file can have that name
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"not a valid path: {exc}") from exc
    try:
        is_file = await run_in_threadpool(path.is_file)
    except OSError as exc:  # a name too long for the file system, say: no file has it
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"not a valid path: {exc.strerror or exc}"
        ) from exc
    if not is_file:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no such file: {given.path}")
    if given.expected_size is not None or given.expected_mtime_ns is not None:
        await _check_expected(path, given)
    require_known_model(context, given.model)
    try:
        options = given.options(context.default_options)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from exc
    callback = callback_of(context, given)
    try:
        return await run_in_threadpool(
            partial(
                context.store.enqueue,
                path,
                options,
                API_ORIGIN,
                force=given.force,
                callback=callback,
            )
        )
    except UnstorablePath as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc


async def _check_expected(path: Path, given: TranscribeRequest) -> None:
    """412 when the server's file is not the one the client expects (another machine's file at
    the same path): before any job is created or changed."""
    try:
        found = await run_in_threadpool(path.stat)
    except OSError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no such file: {given.path}") from exc
    size = given.expected_size if given.expected_size is not None else found.st_size
    mtime_ns = given.expected_mtime_ns if given.expected_mtime_ns is not None else found.st_mtime_ns
    if not looks_the_same(size, mtime_ns, found.st_size, found.st_mtime_ns):
        raise HTTPException(
            status.HTTP_412_PRECONDITION_FAILED,
            f"the server's file at {given.path} is not the one expected: it has "
            f"{_version_text(found.st_size, found.st_mtime_ns)}, not "
            f"{_version_text(size, mtime_ns)}; no job was created",
        )


def _version_text(size: int, mtime_ns: int) -> str:
    try:
        when = datetime.fromtimestamp(mtime_ns / 1e9, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        when = f"{mtime_ns} ns"
    return f"{size} bytes, modified {when}"


async def _uploaded(
    request: Request, context: Context, content_type: str
) -> tuple[JobRecord, bool]:
    # A declared size past the limit never gets here: BodyLimitMiddleware answers 413 first.
    try:
        upload = await receive_upload(
            request.stream(), content_type, context.uploads_dir, "file", context.max_upload_bytes
        )
    except UploadError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    assert upload.path is not None
    try:
        given = OptionsIn.from_form(upload.fields)
        check_prompt(given.initial_prompt, "initial_prompt")
        check_prompt(given.hotwords, "hotwords")
        require_known_model(context, given.model)
        options = given.options(context.default_options)
        callback = callback_of(context, given)
    except ValidationError as exc:
        upload.discard()
        raise RequestValidationError(exc.errors(include_url=False)) from exc
    except (ContentTooLarge, HTTPException):
        upload.discard()
        raise
    return await enqueue_upload(context, upload, options, force=given.force, callback=callback)


@router.get("/jobs")
def list_jobs(
    context: Context,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    origin: Annotated[
        str | None,
        Query(
            description="Where the jobs came from, as their origin says: inbox:NAME, api, "
            "upload or cli"
        ),
    ] = None,
    inbox: Annotated[
        str | None,
        Query(deprecated=True, description="An inbox's name: origin=inbox:NAME says the same"),
    ] = None,
    source: Annotated[
        str | None,
        Query(deprecated=True, description="api, upload or cli: origin says the same"),
    ] = None,
    since: Annotated[
        Moment | None, Query(description="Created at or after (ISO 8601 with its offset)")
    ] = None,
    until: Annotated[
        Moment | None, Query(description="Created before (ISO 8601 with its offset)")
    ] = None,
    text: Annotated[str | None, Query(description="In the file's path or its transcript")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None, Query(pattern=r"^[0-9]+$", description="next_cursor of the previous page")
    ] = None,
) -> JobPage:
    """Jobs, newest first, a page at a time."""
    # Past the largest id means "from the newest": clamped, so the database never overflows.
    before_id = min(int(cursor), MAX_JOB_ID) if cursor is not None else None
    if origin is None:  # the older spellings, when origin is not given
        origin = inbox_origin(inbox) if inbox is not None else source
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
def get_job(job_id: JobId, context: Context) -> JobOut:
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
def get_transcript(job_id: JobId, context: Context, format: OutputFormat = "txt") -> Response:
    """The job's transcript in one format, rendered from the database (not from the files) as
    the job's files are (its subtitle rules), with the names given to its speakers."""
    transcript = _transcript(context, job_id)
    options = context.store.get(job_id).options
    return Response(rendered(transcript.named(), format, options), media_type=MEDIA_TYPES[format])


@router.get("/jobs/{job_id}/speakers", responses=NOT_FOUND)
def get_speakers(job_id: JobId, context: Context) -> SpeakersOut:
    """The job's speakers (none without speaker labels) and the names they were given."""
    return _speakers(context, job_id)


@router.put(
    "/jobs/{job_id}/speakers",
    responses={
        **NOT_FOUND,
        400: {"model": ErrorOut, "description": "A body that is not JSON"},
        422: {"model": ErrorOut, "description": "No such speaker, or a name that cannot be shown"},
    },
)
def rename_speakers(job_id: JobId, names: SpeakerNamesIn, context: Context) -> SpeakersOut:
    """Name the job's speakers ({"names": {"Speaker 1": "Ada"}}; "" gives a label back). Every
    format rendered from now on (GET /jobs/{id}/transcript, the dashboard) shows the names, and
    the files the job wrote are rewritten with them within seconds (files_pending until then),
    unless a file was changed since."""
    try:
        SpeakerNames(context.store).rename(job_id, names.names)
    except NoTranscript as exc:
        _transcript(context, job_id)  # says which: no such job, or no transcript yet
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except SpeakerNameError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    context.on_renamed()
    return _speakers(context, job_id)


def _speakers(context: Context, job_id: int) -> SpeakersOut:
    transcript = _transcript(context, job_id)
    return SpeakersOut.of(transcript, SpeakerNames(context.store).files_outdated(job_id))


def _transcript(context: Context, job_id: int) -> Transcript:
    """The job's transcript; 404 naming why there is none."""
    transcript = context.store.transcript(job_id)
    if transcript is None:
        try:
            job = context.store.get(job_id)
        except JobNotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"job {job_id} has no transcript ({job.status.value})"
        )
    return transcript


@router.delete("/jobs/{job_id}", responses={**NOT_FOUND, **CONFLICT})
def cancel_job(job_id: JobId, context: Context) -> JobOut:
    """Cancel a queued or running job; a running one stops at its next segment, or its worker is
    killed and replaced when still on it a second after the supervisor saw the cancel."""
    try:
        return JobOut.from_record(context.store.cancel(job_id))
    except JobNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except InvalidTransition as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


@router.post("/jobs/{job_id}/retry", responses={**NOT_FOUND, **CONFLICT})
def retry_job(job_id: JobId, context: Context) -> JobOut:
    """Queue a failed or cancelled job again, with a fresh allowance of attempts."""
    try:
        job = context.store.get(job_id)
        require_known_model(context, job.options.model, status.HTTP_409_CONFLICT)
        bring_back_original(job)  # from failed/, as the inbox's rules want
        return JobOut.from_record(context.store.retry(job_id))
    except JobNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except InvalidTransition as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


@router.post(
    "/jobs/{job_id}/run-again",
    status_code=status.HTTP_201_CREATED,
    responses={**NOT_FOUND, **CONFLICT},
)
def run_job_again(job_id: JobId, context: Context, response: Response) -> JobOut:
    """A new job of an ended job's file with the same options, even if nothing changed (done
    jobs included): the answer is the new job."""
    try:
        require_known_model(
            context, context.store.get(job_id).options.model, status.HTTP_409_CONFLICT
        )
        job = context.store.run_again(job_id)
    except JobNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except InvalidTransition as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    response.headers["Location"] = f"/jobs/{job.id}"
    return JobOut.from_record(job)
