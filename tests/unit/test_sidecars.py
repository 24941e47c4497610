"""Sidecar subtitle names as media servers read them, on real folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from whisper_transcriber.worker.sidecars import existing_subtitle, language_names, subtitle_language


def test_language_names_cover_iso_spellings_and_whisper_codes() -> None:
    assert {"en", "eng", "english"} <= language_names("en")
    assert {"de", "deu", "ger", "german"} <= language_names("de")
    assert {"jw", "jv", "jav"} <= language_names("jw")  # Whisper's code for Javanese
    assert language_names("xx") == {"xx"}


def test_translation_is_written_in_english() -> None:
    assert subtitle_language("de", "translate") == "en"
    assert subtitle_language("de", "transcribe") == "de"


@pytest.mark.parametrize(
    ("present", "found"),
    [
        ("Movie (2020).en.srt", True),
        ("Movie (2020).eng.forced.srt", True),
        ("Movie (2020).EN.sdh.ass", True),
        ("Movie (2020).en-US.srt", True),
        ("Movie (2020).en_GB.vtt", True),
        ("Movie (2020).English.srt", True),
        ("Movie (2020).de.srt", False),
        ("Movie (2020).srt", False),  # no language: it may be any
        ("Movie (2020).en.txt", False),
        ("Movie (2020).en.commentary.srt", False),
        ("Movie (2020) Extended.en.srt", False),
        ("Movie (2020).Extended.en.srt", False),
    ],
)
def test_existing_subtitle(tmp_path: Path, present: str, found: bool) -> None:
    video = tmp_path / "Movie (2020).mkv"
    video.touch()
    (tmp_path / present).touch()
    assert existing_subtitle(video, "en") == (tmp_path / present if found else None)


def test_existing_subtitle_in_the_output_folder_too(tmp_path: Path) -> None:
    video = tmp_path / "films" / "Show.S01E01.mkv"
    outbox = tmp_path / "subs"
    for folder in (video.parent, outbox):
        folder.mkdir()
    video.touch()
    assert existing_subtitle(video, "de", outbox) is None
    (outbox / "Show.S01E01.ger.srt").touch()
    assert existing_subtitle(video, "de", outbox) == outbox / "Show.S01E01.ger.srt"
