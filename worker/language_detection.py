"""A file's language, detected from its speech rather than from its first 30 seconds.

faster-whisper detects from the start of the audio: a film that opens with music or silence is
often taken for English (docs/benchmarks.md, "Language detection"). Here the start is searched
with faster-whisper's own VAD (Silero) for speech, up to SEARCH_S into the file, and the language
is detected from up to `windows` 30-second windows of that speech by faster-whisper's rule: the
first window whose best language is surer than the threshold decides; when none is, the language
with the highest mean probability over the windows. Expected languages (an inbox's list) limit the
choice: the best of them is taken, with the model's own probability for it (which may be low: the
model heard something else, and the threshold sends it on to the next window).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from whisper_transcriber.db.values import JobOptions
from whisper_transcriber.worker.audio_stream import SAMPLING_RATE, Samples
from whisper_transcriber.worker.media import MediaError

# Whisper hears 30 seconds at a time: one window, one detection.
WINDOW = 30 * SAMPLING_RATE
# How far into a file speech is looked for (a film's opening titles and music, a podcast's jingle);
# a file with no speech so far is detected from its first window, as faster-whisper does.
SEARCH_S = 600.0
# The VAD runs over the audio this much at a time, so the search stops soon after enough speech.
SEARCH_CHUNK = 60 * SAMPLING_RATE
# A last window shorter than this is not a fair vote (a cough, one word).
MIN_WINDOW = 5 * SAMPLING_RATE


@dataclass(frozen=True)
class Detection:
    language: str
    probability: float


@dataclass(frozen=True)
class DetectionRules:
    windows: int
    threshold: float
    expected: tuple[str, ...] = ()

    @classmethod
    def of(cls, options: JobOptions) -> DetectionRules:
        return cls(
            options.language_detection_segments,
            options.language_detection_threshold,
            options.expected_languages,
        )


def known_without_model(options: JobOptions, multilingual: bool) -> Detection | None:
    """The language when nothing needs detecting: given, the only one expected, or English for an
    English-only model (as faster-whisper answers); None when the model must listen."""
    if options.language is not None:
        return Detection(options.language, 1.0)
    if not multilingual:
        return Detection("en", 1.0)
    if len(options.expected_languages) == 1:
        return Detection(options.expected_languages[0], 1.0)
    return None


def detect(model: Any, audio: Iterable[Samples], rules: DetectionRules) -> Detection:
    """The language of `audio` (the file from its start, in blocks of any size) by a
    faster-whisper WhisperModel; `audio` is read only as far as the search needs."""
    start, windows = speech_windows(audio, rules.windows)
    votes: dict[str, list[float]] = {}
    for window in windows or [start]:
        _best, _probability, every = model.detect_language(audio=window)
        ranked = _among(every, rules.expected)
        language, probability = ranked[0]
        if probability > rules.threshold:
            return Detection(language, probability)
        for code, p in ranked:
            votes.setdefault(code, []).append(p)
    count = len(windows) or 1
    language = max(votes, key=lambda code: sum(votes[code]))
    return Detection(language, sum(votes[language]) / count)


def speech_windows(audio: Iterable[Samples], count: int) -> tuple[Samples, list[Samples]]:
    """The first window of the audio as it is, and up to `count` windows of its speech (silence
    and music left out), from at most SEARCH_S seconds."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    vad = VadOptions()
    wanted = count * WINDOW
    start: Samples | None = None
    speech: list[Samples] = []
    held = searched = 0
    for chunk in _chunks(audio, SEARCH_CHUNK):
        if start is None:
            start = chunk[:WINDOW]
        for stamp in get_speech_timestamps(chunk, vad):
            speech.append(chunk[stamp["start"] : stamp["end"]])
            held += speech[-1].shape[0]
        searched += chunk.shape[0]
        if held >= wanted or searched >= SEARCH_S * SAMPLING_RATE:
            break
    if start is None:
        raise MediaError("no audio left to detect the language of (the file changed?)")
    joined = np.concatenate(speech)[:wanted] if speech else np.zeros(0, np.float32)
    windows = [joined[i : i + WINDOW] for i in range(0, joined.shape[0], WINDOW)]
    # A second of "speech" in an hour of noise is no fair window: the start is heard instead.
    return start, [w for w in windows if w.shape[0] >= min(MIN_WINDOW, start.shape[0])]


def _among(every: list[tuple[str, float]], expected: tuple[str, ...]) -> list[tuple[str, float]]:
    """Languages by the model's probability, best first: all of them, or the expected ones only
    (each of them, at 0 where the model does not list it)."""
    if expected:
        given = dict(every)
        every = [(code, float(given.get(code, 0.0))) for code in expected]
    return sorted(every, key=lambda pair: -pair[1])


def _chunks(audio: Iterable[Samples], size: int) -> Iterator[Samples]:
    """The audio regrouped into chunks of `size` samples (the last one shorter)."""
    pending: list[Samples] = []
    held = 0
    for block in audio:
        pending.append(block)
        held += block.shape[0]
        while held >= size:
            joined = np.concatenate(pending)
            yield joined[:size]
            rest = joined[size:]
            pending, held = ([rest] if rest.shape[0] else []), rest.shape[0]
    if held:
        yield np.concatenate(pending)
