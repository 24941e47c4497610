"""One list of the languages Whisper knows, light to import, equal to faster-whisper's."""

from __future__ import annotations

from pathlib import Path

from faster_whisper.tokenizer import _LANGUAGE_CODES

from tests.test_api_operations import app_for
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.worker.languages import LANGUAGE_CODES


def test_the_list_is_faster_whispers() -> None:
    assert tuple(_LANGUAGE_CODES) == LANGUAGE_CODES


def test_get_options_offers_the_same_list(store: JobStore, tmp_path: Path) -> None:
    with app_for(store, tmp_path) as client:
        languages = client.get("/options").json()["languages"]
    assert tuple(languages) == LANGUAGE_CODES
