"""Language detection through the real multilingual model (bundled-base): a file that opens with a
minute of music is detected from its speech (faster-whisper's own detection, from the first 30 s,
takes it for English and translates it); expected languages limit the choice; a real job records
the language and its probability on both databases; an English-only model answers English
without listening."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers.media import FIXTURES
from whisper_transcriber.api.schemas import JobOut
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.values import JobOptions
from whisper_transcriber.worker.audio_stream import SAMPLING_RATE
from whisper_transcriber.worker.confinement import Confinement
from whisper_transcriber.worker.engine import Engine
from whisper_transcriber.worker.job_runner import run_job

MUSIC_THEN_GERMAN = str(FIXTURES / "music_then_german.ogg")
FRENCH = str(FIXTURES / "french.ogg")


def test_a_file_opening_with_music_is_detected_from_its_speech(
    multilingual_engine: Engine,
) -> None:
    from faster_whisper.audio import decode_audio

    start = decode_audio(MUSIC_THEN_GERMAN)[: 30 * SAMPLING_RATE]
    own, _probability, _all = multilingual_engine.model.detect_language(start)
    assert own == "en"  # faster-whisper's own, from the first 30 s: the music

    transcript = multilingual_engine.transcribe(MUSIC_THEN_GERMAN, JobOptions(formats=("txt",)))
    assert transcript.language == "de"
    assert transcript.language_probability > 0.5
    assert "Sturm" in transcript.text, transcript.text
    detected = multilingual_engine.transcribe(MUSIC_THEN_GERMAN, JobOptions(detect_only=True))
    assert (detected.language, detected.segments) == ("de", ())
    assert detected.language_probability == transcript.language_probability


def test_expected_languages_limit_the_choice(multilingual_engine: Engine) -> None:
    def detected(*expected: str) -> tuple[str, float]:
        options = JobOptions(detect_only=True, expected_languages=expected)
        found = multilingual_engine.transcribe(FRENCH, options)
        return found.language, found.language_probability

    language, probability = detected()
    assert probability < 0.5, language  # the model hesitates (Vietnamese and French about even)
    french, probability_of_french = detected("en", "fr")
    assert french == "fr"
    assert probability_of_french < 0.5  # the model's own probability, not a share of the two
    assert detected("de", "en")[0] in ("de", "en")
    assert detected("it") == ("it", 1.0)  # one expected language is the language


def test_a_job_records_the_detected_language_and_its_probability(
    store: JobStore, multilingual_engine: Engine, tmp_path: Path
) -> None:
    source = Path(shutil.copy(MUSIC_THEN_GERMAN, tmp_path))
    job, _ = store.enqueue(source, JobOptions(formats=("txt",)), "api")
    claimed = store.claim("w")
    assert claimed is not None
    run_job(store, multilingual_engine, claimed, Confinement.of([tmp_path]))
    summary = store.transcript_summaries([job.id])[job.id]
    shown = JobOut.from_record(store.get(job.id), summary)
    assert shown.status.value == "done"
    assert shown.language == "de"
    assert shown.language_probability is not None and 0.5 < shown.language_probability < 1


def test_an_english_only_model_answers_english_without_listening(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("an English-only model detected a language")

    monkeypatch.setattr(engine.model, "detect_language", never)
    for options in (JobOptions(detect_only=True), JobOptions(formats=("txt",))):
        transcript = engine.transcribe(MUSIC_THEN_GERMAN, options)
        assert (transcript.language, transcript.language_probability) == ("en", 1.0)
