"""whisper-asr-webservice's API, as Bazarr's Whisper provider calls it: POST /asr and
POST /detect-language. Synchronous for the client, yet each request is a job like any other:
queued, run by the pool, kept in the history; the request awaits its end without blocking the
event loop."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from whisper_transcriber.api.deps import Context
from whisper_transcriber.api.limits import check_prompt
from whisper_transcriber.api.schemas import DetectedLanguage, ErrorOut
from whisper_transcriber.api.sync_jobs import multipart_body, receive, run_and_wait
from whisper_transcriber.api.uploads import wrap_raw_pcm
from whisper_transcriber.db.values import (
    MAX_SPEAKERS,
    JobOptions,
    JobRecord,
    OutputFormat,
    Task,
    speaker_count_problem,
)
from whisper_transcriber.worker.languages import Language
from whisper_transcriber.worker.outputs import rendered
from whisper_transcriber.worker.sidecars import language_name

router = APIRouter(tags=["compatibility"])

MEDIA_TYPES = {
    "txt": "text/plain; charset=utf-8",
    "srt": "text/plain; charset=utf-8",
    "vtt": "text/plain; charset=utf-8",
    "tsv": "text/plain; charset=utf-8",
    "json": "application/json",
}
UPLOAD_BODY = multipart_body("audio_file")
FAILURES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "No audio_file, or a malformed body"},
    413: {
        "model": ErrorOut,
        "description": "The upload, a field or the prompt is larger than its limit",
    },
    422: {"model": ErrorOut, "description": "The audio could not be transcribed (the reason)"},
    504: {"model": ErrorOut, "description": "The job did not end in time; it goes on"},
}
SpeakerCountQuery = Annotated[
    int | None, Query(ge=1, le=MAX_SPEAKERS, description="With diarize: bounds on the speakers")
]
Encode = Annotated[
    bool, Query(description="false: the body is raw 16 kHz mono s16le PCM (Bazarr's way)")
]


async def _run_upload(
    request: Request, context: Context, encode: bool, options: JobOptions
) -> JobRecord:
    upload = await receive(request, context, "audio_file")
    if not encode:
        await run_in_threadpool(wrap_raw_pcm, upload)
    return await run_and_wait(request, context, upload, options)


@router.post("/asr", openapi_extra=UPLOAD_BODY, response_class=Response, responses={
    200: {"content": {"text/plain": {}, "application/json": {}}, "description": "The transcript"},
    **FAILURES,
})  # fmt: skip
async def asr(
    request: Request,
    context: Context,
    encode: Encode = True,
    task: Task = "transcribe",
    language: Language = None,
    initial_prompt: str | None = None,
    vad_filter: bool = False,
    word_timestamps: bool = False,
    diarize: Annotated[bool, Query(description="Speaker labels, as WhisperX's engine")] = False,
    min_speakers: SpeakerCountQuery = None,
    max_speakers: SpeakerCountQuery = None,
    output: OutputFormat = "txt",
) -> Response:
    """Transcribe (or translate into English) an uploaded audio_file; answers the transcript."""
    check_prompt(initial_prompt, "initial_prompt")  # before the upload: nothing is stored
    # As whisper-asr-webservice: the counts count only with diarize.
    counts = (min_speakers, max_speakers) if diarize else (None, None)
    problem = speaker_count_problem(diarize, None, *counts)
    if problem is not None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, problem)
    options = context.default_options.model_copy(
        update={
            "task": task,
            "language": language or None,
            "initial_prompt": initial_prompt or None,
            "vad_filter": vad_filter,
            "word_timestamps": word_timestamps,
            "diarize": diarize,
            "num_speakers": None,
            "min_speakers": counts[0],
            "max_speakers": counts[1],
            "formats": (output,),
            "output_dir": None,
        }
    )
    job = await _run_upload(request, context, encode, options)
    transcript = await run_in_threadpool(context.store.transcript, job.id)
    assert transcript is not None
    # Speakers as whisper-asr-webservice's WhisperX engine names them: SPEAKER_00, SPEAKER_01, ...
    whisperx = {label: f"SPEAKER_{n:02d}" for n, label in enumerate(transcript.speakers)}
    # A long film's cues take a moment to make: not on the event loop.
    body = await run_in_threadpool(
        rendered, transcript.with_speaker_names(whisperx), output, job.options
    )
    return Response(
        body,
        media_type=MEDIA_TYPES[output],
        headers={
            "Asr-Engine": "faster_whisper",
            "Content-Disposition": f'attachment; filename="{job.id}.{output}"',
            "Location": f"/jobs/{job.id}",
        },
    )


@router.post("/detect-language", openapi_extra=UPLOAD_BODY, responses=FAILURES)
async def detect_language(
    request: Request, context: Context, encode: Encode = True
) -> DetectedLanguage:
    """The spoken language of an uploaded audio_file, detected from its speech as a job's is (the
    service's detection settings and expected languages)."""
    options = context.default_options.model_copy(
        update={"detect_only": True, "formats": ("json",), "language": None}  # detected, always
    )
    job = await _run_upload(request, context, encode, options)
    transcript = await run_in_threadpool(context.store.transcript, job.id)
    assert transcript is not None
    return DetectedLanguage(
        detected_language=language_name(transcript.language),
        language_code=transcript.language,
        confidence=transcript.language_probability,
    )
