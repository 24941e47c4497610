"""One list of the languages Whisper knows, light to import, equal to faster-whisper's."""

from __future__ import annotations

from pathlib import Path

import pytest
from faster_whisper.tokenizer import _LANGUAGE_CODES
from pydantic_core import PydanticCustomError

from tests.helpers.apps import app_for
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.worker.languages import LANGUAGE_CODES, known_language


def test_the_list_is_faster_whispers() -> None:
    assert tuple(_LANGUAGE_CODES) == LANGUAGE_CODES


def test_get_options_offers_the_same_list(store: JobStore, tmp_path: Path) -> None:
    with app_for(store, tmp_path) as client:
        languages = client.get("/options").json()["languages"]
    assert tuple(languages) == LANGUAGE_CODES


@pytest.mark.parametrize("given", [None, "", "  ", "auto", "AUTO", " Auto "])
def test_no_language_and_auto_detect_it(given: str | None) -> None:
    assert known_language(given) is None


@pytest.mark.parametrize("given", ["xx", "english", "en-US", "None", "detect"])
def test_anything_else_whisper_lacks_is_refused(given: str) -> None:
    with pytest.raises(PydanticCustomError, match=f"unknown language '{given}'; Whisper knows af"):
        known_language(given)
