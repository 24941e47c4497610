"""The service's transcript equals faster-whisper's own for the same model and options."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import ctranslate2
import pytest
from faster_whisper import WhisperModel

from tests.helpers.media import FIXTURES
from whisper_transcriber.db.transcript import Transcript
from whisper_transcriber.db.values import JobOptions
from whisper_transcriber.service.batch import run_until_finished
from whisper_transcriber.service.bootstrap import prepare
from whisper_transcriber.service.settings import load_settings
from whisper_transcriber.worker.engine import SAMPLING_SEED, resolve_model, transcribe_kwargs

OPTION_SETS: list[dict[str, Any]] = [
    {},
    {"vad_filter": True, "word_timestamps": True},
    {"language": "en", "beam_size": 1, "initial_prompt": "A museum and a finance report."},
]


@pytest.fixture(scope="module")
def direct_model() -> WhisperModel:
    return WhisperModel(
        resolve_model("bundled").name_or_path, device="cpu", compute_type="int8", cpu_threads=1
    )


def direct(model: WhisperModel, path: Path, options: JobOptions) -> list[dict[str, Any]]:
    ctranslate2.set_random_seed(SAMPLING_SEED)  # as the engine does before every job
    segments, _info = model.transcribe(str(path), **transcribe_kwargs(options))
    return [
        {
            "text": s.text,
            "start": s.start,
            "end": s.end,
            "words": [(w.word, w.start, w.end) for w in s.words] if s.words else None,
        }
        for s in segments
    ]


def stored(transcript: Transcript) -> list[dict[str, Any]]:
    return [
        {
            "text": s.text,
            "start": s.start,
            "end": s.end,
            "words": [(w.word, w.start, w.end) for w in s.words] if s.words else None,
        }
        for s in transcript.segments
    ]


def test_service_text_equals_direct_faster_whisper(
    database_url: str, tmp_path: Path, direct_model: WhisperModel
) -> None:
    prepared = prepare(
        load_settings(
            database_url=database_url, workers=2, threads_per_worker=1, allowed_roots=[tmp_path]
        )
    )
    sources = sorted(FIXTURES.glob("speech_*"))
    jobs = []
    for n, raw in enumerate(OPTION_SETS):
        options = JobOptions(**raw)
        for source in sources:
            copy = tmp_path / f"set{n}" / source.name
            copy.parent.mkdir(exist_ok=True)
            shutil.copy(source, copy)
            job, _ = prepared.store.enqueue(copy, options, "test")
            jobs.append((job, copy, options))

    finished = run_until_finished(prepared, [job for job, _, _ in jobs])
    assert [job.status.value for job in finished] == ["done"] * len(jobs)
    for job, copy, options in jobs:
        transcript = prepared.store.transcript(job.id)
        assert transcript is not None
        assert stored(transcript) == direct(direct_model, copy, options), (copy, options)
    prepared.db.dispose()
