"""A long file goes to the model a piece at a time and comes back as one transcript: the real
model on real speech, with pieces made short so that a one-minute file has several."""

from __future__ import annotations

import difflib
import itertools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import ctranslate2
import pytest

from tests.helpers.media import FIXTURES, wav_claiming
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.transcript import Transcript
from whisper_transcriber.db.values import JobOptions
from whisper_transcriber.worker.audio_stream import SAMPLING_RATE
from whisper_transcriber.worker.confinement import Confinement
from whisper_transcriber.worker.engine import (
    PIECE_S,
    SAMPLING_SEED,
    Engine,
    resolve_model,
    transcribe_kwargs,
)
from whisper_transcriber.worker.job_runner import Abandoned, run_job
from whisper_transcriber.worker.long_form import PROMPT_TOKENS, Context

SHORT_PIECE_S = 20.0
# Ten sentences, about 44 s as espeak-ng says them: pieces of 20 s make three or four of it.
SENTENCES = {
    "museum": "Welcome to the museum, where every painting tells a story.",
    "report": "Please send the quarterly report to the finance team by Friday.",
    "elephant": "My favorite color is green and my favorite animal is the elephant.",
    "cloudy": "The weather today is cloudy with a chance of rain in the afternoon.",
    "library": "We will meet again next week to discuss the budget for the new library.",
    "train": "The train to the city leaves at half past eight every morning.",
    "park": "Children were playing in the park while their parents talked on the benches.",
    "committee": "The committee decided to postpone the vote until all members could attend.",
    "coffee": "A good cup of coffee is the best way to start a long day of work.",
    "cat": "Remember to water the plants and feed the cat before you leave for the holidays.",
}
# " A museum tour." in tiny.en's tokens: the job's prompt, as faster-whisper encodes it.
PROMPT_OF_JOB = [317, 13257, 4205, 13]


@pytest.fixture(scope="module")
def paragraph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sentences spoken by espeak-ng (as tests/fixtures/make_fixtures.sh speaks them)."""
    folder = tmp_path_factory.mktemp("paragraph")
    said, path = folder / "said.wav", folder / "paragraph.wav"
    text = " ".join(SENTENCES.values())
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(said), text], check=True)
    subprocess.run(["sox", "-R", str(said), "-r", "16000", "-c", "1", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def piecewise() -> Engine:
    return Engine(resolve_model("bundled"), "cpu", "int8", cpu_threads=1, piece_s=SHORT_PIECE_S)


class Spy:
    """The engine's real WhisperModel, with the arguments of each transcribe call recorded."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def transcribe(self, audio: Any, **kwargs: Any) -> Any:
        self.calls.append({"samples": audio.shape[0], **kwargs})
        return self.real.transcribe(audio, **kwargs)


@pytest.fixture
def spy(piecewise: Engine, monkeypatch: pytest.MonkeyPatch) -> Spy:
    spy = Spy(piecewise.model)
    monkeypatch.setattr(piecewise, "model", spy)
    return spy


def carried(transcript: Transcript, until_s: float) -> list[int] | None:
    """The tokens faster-whisper's prompt would hold after the segments that end by until_s: the
    text since the last segment decoded above 0.5 (its fallback gave up on the prompt there)."""
    before = [s for s in transcript.segments if s.start < until_s]
    hot = [n for n, s in enumerate(before) if (s.temperature or 0) > 0.5]
    tokens = [] if hot else PROMPT_OF_JOB.copy()
    for segment in before[hot[-1] + 1 :] if hot else before:
        tokens += list(segment.tokens or ())
    return tokens[-PROMPT_TOKENS:] or None


def words(transcript: Transcript) -> list[str]:
    return [w.strip(".,!?").lower() for w in transcript.text.split()]


def test_a_file_of_one_piece_is_faster_whisper_s_own_transcript(
    engine: Engine, paragraph: Path
) -> None:
    assert 40 < paragraph.stat().st_size / (2 * SAMPLING_RATE) < PIECE_S
    options = JobOptions(word_timestamps=True)
    transcript = engine.transcribe(str(paragraph), options)
    ctranslate2.set_random_seed(SAMPLING_SEED)
    direct, _info = engine.model.transcribe(str(paragraph), **transcribe_kwargs(options))
    assert [
        (
            s.id, s.seek, s.start, s.end, s.text, s.tokens,
            tuple((w.start, w.end, w.word, w.probability) for w in s.words or ()),
        )
        for s in transcript.segments
    ] == [
        (
            s.id, s.seek, s.start, s.end, s.text, tuple(s.tokens),
            tuple((w.start, w.end, w.word, w.probability) for w in s.words or ()),
        )
        for s in direct
    ]  # fmt: skip


def test_a_long_file_is_transcribed_piece_by_piece_as_one(
    engine: Engine, piecewise: Engine, spy: Spy, paragraph: Path
) -> None:
    options = JobOptions(initial_prompt="A museum tour.", word_timestamps=True)
    whole = engine.transcribe(str(paragraph), options)
    heard: list[str | float] = []  # the language, then each progress fraction
    transcript = piecewise.transcribe(
        str(paragraph), options, on_progress=heard.append, on_language=heard.append
    )

    # Several pieces of at most 20 s, cut in the last 10 s of each, covering every sample.
    sizes = [call["samples"] for call in spy.calls]
    assert len(sizes) >= 3 and sum(sizes) == round(whole.duration * SAMPLING_RATE)
    assert all(10 * SAMPLING_RATE <= size <= 20 * SAMPLING_RATE for size in sizes[:-1])
    # The job's prompt opens the first piece; each later one gets the text before it, as tokens.
    # Every piece gets the language, known before the first (tiny.en knows English only).
    assert spy.calls[0]["initial_prompt"] == "A museum tour." and spy.calls[0]["language"] == "en"
    ends = [sum(sizes[: n + 1]) / SAMPLING_RATE for n in range(len(sizes))]
    for n, call in enumerate(spy.calls[1:]):
        assert call["language"] == "en"
        assert call["initial_prompt"] == carried(transcript, ends[n]), n + 1

    # One transcript: ids running on, times in the file's timeline, nothing lost at the cuts.
    segments = transcript.segments
    assert [s.id for s in segments] == list(range(1, len(segments) + 1))
    assert all(a.start <= b.start for a, b in itertools.pairwise(segments))
    assert segments[-1].end <= transcript.duration + 1
    assert all(w.start >= s.start - 1 for s in segments for w in s.words or ())
    assert transcript.duration == whole.duration and transcript.language == "en"
    # Cut between words: every sentence is there, and the words are the whole file's (tiny.en
    # hears a word or two differently with other context).
    assert all(keyword in words(transcript) for keyword in SENTENCES)
    assert difflib.SequenceMatcher(a=words(whole), b=words(transcript)).ratio() > 0.95

    # The language first, then progress that only grows, to the end.
    assert heard[0] == "en"
    progress = [value for value in heard[1:] if isinstance(value, float)]
    assert len(progress) == len(heard) - 1
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert len(progress) >= len(sizes)


def test_stopping_in_progress_stops_at_once(piecewise: Engine, spy: Spy, paragraph: Path) -> None:
    def abandon(_fraction: float) -> None:
        raise Abandoned

    with pytest.raises(Abandoned):
        piecewise.transcribe(str(paragraph), JobOptions(), on_progress=abandon)
    assert len(spy.calls) == 1  # the first piece's first segment; nothing decoded after it


def test_detection_looks_at_the_start_only(piecewise: Engine, spy: Spy, tmp_path: Path) -> None:
    # It claims two hours and holds one second: the start is enough to answer.
    claims = wav_claiming(tmp_path / "film.wav", 7200, 1)
    detected = piecewise.transcribe(str(claims), JobOptions(detect_only=True))
    assert (detected.language, detected.duration, detected.segments) == ("en", 7200, ())
    assert spy.calls == []


def test_a_file_longer_than_allowed_fails_at_once(store: JobStore, tmp_path: Path) -> None:
    limited = Engine(resolve_model("bundled"), "cpu", "int8", 1, max_audio_duration_s=3)
    source = Path(shutil.copy(FIXTURES / "speech_a.wav", tmp_path))
    job, _ = store.enqueue(source, JobOptions(), "test")
    claimed = store.claim("w1")
    assert claimed is not None
    run_job(store, limited, claimed, Confinement.of([tmp_path]))
    failed = store.get(job.id)
    assert failed.status is JobStatus.FAILED and failed.attempts == 1
    assert failed.error == (
        f"too long: {source} is 4 s long; the longest allowed is 3 s (max_audio_duration_s)"
    )


class Raw:
    def __init__(self, tokens: list[int], temperature: float = 0.0) -> None:
        self.tokens, self.temperature = tokens, temperature


def test_context_carries_text_as_faster_whisper_does() -> None:
    context = Context([1, 2], carry=True)
    context.add(Raw([3, 4]))
    assert context.prompt() == [1, 2, 3, 4]
    context.add(Raw([5], temperature=0.8))  # decoded hot: the prompt starts afresh
    assert context.prompt() is None
    context.add(Raw(list(range(1000))))
    assert context.prompt() == list(range(1000 - PROMPT_TOKENS, 1000))
    off = Context([1, 2], carry=False)
    off.add(Raw([3]))
    assert off.prompt() is None
