"""OpenAI's audio API (POST /v1/audio/transcriptions and /translations, GET /v1/models), so
that the official clients work unchanged. Each request is a job in the queue and the history."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import Field, ValidationError

from whisper_transcriber.api.callbacks import CallbackFields, callback_of
from whisper_transcriber.api.deps import Context
from whisper_transcriber.api.limits import ContentTooLarge, check_prompt
from whisper_transcriber.api.routes.models import require_known_model
from whisper_transcriber.api.schemas import ErrorOut
from whisper_transcriber.api.sync_jobs import multipart_body, receive, run_and_wait
from whisper_transcriber.db.transcript import Transcript
from whisper_transcriber.db.values import RESERVED_MODEL_NAMES, Task
from whisper_transcriber.db.webhook_outbox import EVENT_TYPES
from whisper_transcriber.worker.languages import Language
from whisper_transcriber.worker.outputs import rendered
from whisper_transcriber.worker.sidecars import language_name

router = APIRouter(prefix="/v1", tags=["openai"])

MODEL_ID = "whisper-1"
ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt", "diarized_json"]


class OpenAIForm(CallbackFields):
    """The form fields OpenAI's clients send with the file, and our callback fields (the OpenAI
    client's extra_body), so that a request that times out still reaches its sender."""

    model: str = Field(
        description="whisper-1 (what OpenAI's clients send) or default: the service's model; "
        "or a name GET /v1/models lists"
    )
    language: Language = None
    prompt: str | None = None
    response_format: ResponseFormat = "json"
    temperature: float | None = Field(default=None, ge=0, le=1)
    timestamp_granularities: list[Literal["word", "segment"]] = ["segment"]


def _form_schema() -> dict[str, Any]:
    properties = OpenAIForm.model_json_schema()["properties"]
    properties["timestamp_granularities[]"] = properties.pop("timestamp_granularities")
    properties["callback_events"] = {
        "type": "string",
        "description": f"Comma list: {','.join(EVENT_TYPES)}",
    }
    return multipart_body("file", properties, required=("model",))


RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"application/json": {}, "text/plain": {}},
        "description": "json: {text}; verbose_json: language, duration, segments (and words); "
        "diarized_json: segments with a speaker (A, B, ... as they first speak); text, srt and "
        "vtt as plain text",
    },
    400: {"model": ErrorOut, "description": "No file, a malformed body, or an unknown model"},
    413: {
        "model": ErrorOut,
        "description": "The upload, a field or the prompt is larger than its limit",
    },
    422: {"model": ErrorOut, "description": "Bad fields, or audio that could not be transcribed"},
    503: {
        "model": ErrorOut,
        "description": "diarized_json, and the speakers could not be labelled (the job's note)",
    },
    504: {"model": ErrorOut, "description": "The job did not end in time; it goes on"},
}


@router.post("/audio/transcriptions", openapi_extra=_form_schema(), response_class=Response,
             responses=RESPONSES)  # fmt: skip
async def transcriptions(request: Request, context: Context) -> Response:
    """Transcribe an uploaded file in its own language."""
    return await _run(request, context, "transcribe")


@router.post("/audio/translations", openapi_extra=_form_schema(), response_class=Response,
             responses=RESPONSES)  # fmt: skip
async def translations(request: Request, context: Context) -> Response:
    """Translate an uploaded file's speech into English text."""
    return await _run(request, context, "translate")


@router.get("/models")
def models(context: Context) -> dict[str, Any]:
    """The model names OpenAI clients may ask for: whisper-1 (the service's default model) and
    the models setting's."""
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "whisper-transcriber"}
            for name in (MODEL_ID, *context.models)
        ],
    }


async def _run(request: Request, context: Context, task: Task) -> Response:
    upload = await receive(request, context, "file")
    fields: dict[str, Any] = dict(upload.fields)
    granularities = upload.repeated.get("timestamp_granularities[]")
    if granularities:
        fields["timestamp_granularities"] = granularities
    fields.pop("timestamp_granularities[]", None)
    if fields.get("callback_events"):
        fields["callback_events"] = [e.strip() for e in fields["callback_events"].split(",")]
    try:
        form = OpenAIForm.model_validate(fields)
        check_prompt(form.prompt, "prompt")
    except ValidationError as exc:
        upload.discard()
        message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, message) from exc
    except ContentTooLarge:
        upload.discard()
        raise
    try:
        require_known_model(context, form.model)
        callback = callback_of(context, form)
    except HTTPException:
        upload.discard()
        raise
    diarized = form.response_format == "diarized_json"
    if diarized and task != "transcribe":
        upload.discard()
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "response_format: diarized_json is for transcriptions, not translations",
        )
    words = "word" in form.timestamp_granularities and form.response_format == "verbose_json"
    speakers: dict[str, Any] = {"diarize": True} if diarized else {}
    options = context.default_options.model_copy(
        update={
            "task": task,
            "model": None if form.model in RESERVED_MODEL_NAMES else form.model,
            "language": form.language or None,
            "initial_prompt": form.prompt or None,
            "temperature": form.temperature,
            "word_timestamps": words,
            # The subtitle formats are the job's own, so that its cues get word times.
            "formats": (form.response_format,)
            if form.response_format in ("srt", "vtt")
            else ("json",),
            "output_dir": None,
            **speakers,
        }
    )
    job = await run_and_wait(request, context, upload, options, callback)
    transcript = await run_in_threadpool(context.store.transcript, job.id)
    assert transcript is not None
    headers = {"Location": f"/jobs/{job.id}"}
    if diarized and transcript.segments and not transcript.speakers:
        # Labels that could not be made (the job's note says why): not a diarized answer.
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"job {job.id} has no speaker labels: {job.note or 'they could not be made'}",
            headers=headers,
        )
    if form.response_format in ("text", "srt", "vtt"):
        if form.response_format == "text":
            body = transcript.text + "\n"
        else:  # a long file's cues take a moment to make: not on the event loop
            body = await run_in_threadpool(rendered, transcript, form.response_format, job.options)
        return Response(body, media_type="text/plain; charset=utf-8", headers=headers)
    if form.response_format == "json":
        payload: dict[str, Any] = {"text": transcript.text}
    elif diarized:
        payload = _diarized(transcript)
    else:
        payload = _verbose(transcript, task, form.timestamp_granularities)
    return Response(
        json.dumps(payload, ensure_ascii=False), media_type="application/json", headers=headers
    )


def _verbose(transcript: Transcript, task: str, granularities: Sequence[str]) -> dict[str, Any]:
    """OpenAI's verbose_json: the language by name, segments with decoding details, words."""
    payload: dict[str, Any] = {
        "task": task,
        "language": language_name(transcript.language),
        "duration": transcript.duration,
        "text": transcript.text,
    }
    if "segment" in granularities:
        payload["segments"] = [
            {
                "id": s.id,
                "seek": s.seek or 0,
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "tokens": list(s.tokens or ()),
                "temperature": s.temperature or 0.0,
                "avg_logprob": s.avg_logprob or 0.0,
                "compression_ratio": s.compression_ratio or 0.0,
                "no_speech_prob": s.no_speech_prob or 0.0,
            }
            for s in transcript.segments
        ]
    if "word" in granularities:
        payload["words"] = [
            {"word": w.word.strip(), "start": w.start, "end": w.end}
            for s in transcript.segments
            for w in s.words or ()
        ]
    return payload


def _diarized(transcript: Transcript) -> dict[str, Any]:
    """OpenAI's diarized_json: segments with a speaker, named A, B, ... in the order they first
    speak (as OpenAI names speakers it was not told the names of)."""
    letters = {speaker: _letters(number) for number, speaker in enumerate(transcript.speakers)}
    return {
        "task": "transcribe",
        "duration": transcript.duration,
        "text": transcript.text,
        "segments": [
            {
                "type": "transcript.text.segment",
                "id": f"seg_{s.id}",
                "start": s.start,
                "end": s.end,
                "text": s.text.strip(),
                "speaker": letters.get(s.speaker or "", "A"),
            }
            for s in transcript.segments
        ],
        "usage": {"type": "duration", "seconds": transcript.duration},
    }


def _letters(number: int) -> str:
    """A, B, ..., Z, AA, AB, ...: a spreadsheet's column names."""
    name = ""
    number += 1
    while number:
        number, rest = divmod(number - 1, 26)
        name = chr(ord("A") + rest) + name
    return name
