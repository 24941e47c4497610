"""What a submit form offers: the service's defaults and every choice a job option has."""

from __future__ import annotations

import functools

from fastapi import APIRouter

from whisper_transcriber.api.deps import Context
from whisper_transcriber.api.schemas import OptionsOut
from whisper_transcriber.db.values import DEFAULT_MODEL_NAME, OUTPUT_FORMATS, TASKS
from whisper_transcriber.worker.languages import LANGUAGE_CODES
from whisper_transcriber.worker.sidecars import language_name

router = APIRouter(tags=["jobs"])


@router.get("/options")
def options(context: Context) -> OptionsOut:
    return OptionsOut(
        defaults=context.default_options,
        formats=list(OUTPUT_FORMATS),
        tasks=list(TASKS),
        languages=_languages(),
        models=[DEFAULT_MODEL_NAME, *context.models],
        max_upload_bytes=context.max_upload_bytes,
    )


@functools.cache
def _languages() -> dict[str, str]:
    """Whisper's codes with the names /detect-language answers ("en": "english")."""
    return {code: language_name(code) for code in LANGUAGE_CODES}
