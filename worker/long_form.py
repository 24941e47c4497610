"""A file transcribed piece by piece as if it were one: times shifted by each piece's start,
segment ids running on, one language for all, and the text so far carried into the next piece's
prompt as faster-whisper carries it from one 30 s window to the next.

A file of one piece is one call of WhisperModel.transcribe with the job's own arguments: its
transcript is faster-whisper's, unchanged.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from whisper_transcriber.db.transcript import Segment, Word
from whisper_transcriber.worker.audio_stream import SAMPLING_RATE, Piece

# faster-whisper's default prompt_reset_on_temperature: text decoded hotter than this is not
# carried on (it is likely a hallucination).
PROMPT_RESET_TEMPERATURE = 0.5
# How much earlier text faster-whisper's prompt holds (max_length // 2 - 1 tokens).
PROMPT_TOKENS = 223
# Mel frames per second (faster-whisper's `seek` unit).
FRAMES_PER_SECOND = 100
# A piece up to one 30-second window costs buffers of the same sizes every time (faster-whisper
# pads its features to the window), which the heap reuses: trimming it after each (about 2 ms)
# returns nothing that the next job would not take again.
TRIM_AFTER_SAMPLES = 30 * SAMPLING_RATE


@dataclass(frozen=True)
class LongForm:
    """The transcription of every piece, joined."""

    language: str
    language_probability: float
    segments: tuple[Segment, ...]


class Context:
    """The tokens the next piece's prompt starts from: the job's initial prompt, then the text
    decoded since, emptied after a window decoded above PROMPT_RESET_TEMPERATURE (as
    generate_segments resets its prompt), and nothing at all without condition_on_previous_text."""

    def __init__(self, initial: list[int], carry: bool) -> None:
        self.tokens = initial if carry else []
        self.carry = carry

    def add(self, raw: Any) -> None:
        if not self.carry:
            return
        if raw.temperature > PROMPT_RESET_TEMPERATURE:
            self.tokens = []
        else:
            self.tokens = (self.tokens + list(raw.tokens))[-PROMPT_TOKENS:]

    def prompt(self) -> list[int] | None:
        return list(self.tokens) or None


def transcribe_pieces(
    model: Any,
    pieces: Iterable[Piece],
    kwargs: dict[str, Any],
    total_samples: int,
    on_progress: Callable[[float], None] | None = None,
) -> LongForm:
    """Each piece through model.transcribe (a WhisperModel), in order. The first piece detects
    the language when kwargs leave it open (the engine gives it: worker/language_detection.py);
    on_progress hears the fraction of the file done after each segment and piece."""
    kwargs = dict(kwargs)
    initial = kwargs.get("initial_prompt")
    context = Context(
        model.hf_tokenizer.encode(" " + initial.strip(), add_special_tokens=False).ids
        if initial
        else [],
        carry=kwargs.get("condition_on_previous_text", True),
    )
    segments: list[Segment] = []
    first: Any = None
    done = 0.0
    for piece in pieces:
        if first is not None:  # after the first piece: its language, and the text so far
            kwargs["language"] = first.language
            kwargs["initial_prompt"] = context.prompt()
        raw_segments, info = model.transcribe(piece.samples, **kwargs)
        if first is None:
            first = info
        ids_before = len(segments)
        for raw in raw_segments:
            segments.append(_segment(raw, piece, ids_before))
            context.add(raw)
            done = max(done, min(segments[-1].end * SAMPLING_RATE / total_samples, 1.0))
            if on_progress is not None:
                on_progress(done)
        done = max(done, min(piece.end / total_samples, 1.0))
        if on_progress is not None:
            on_progress(done)
        if piece.samples.shape[0] > TRIM_AFTER_SAMPLES:
            release_freed_memory()
    if first is None:
        raise ValueError("no pieces to transcribe")
    return LongForm(first.language, float(first.language_probability), tuple(segments))


def release_freed_memory() -> None:
    """Hand the heap's free pages back to the system (glibc's malloc_trim). A piece's features
    are freed when it is done, but glibc keeps such blocks in its heap, among the small objects
    allocated since: without this a worker's peak crept up by about 50 MB over two hours of
    pieces (docs/benchmarks.md, "Memory per job")."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    trim: Callable[[int], int] | None = getattr(libc, "malloc_trim", None)  # glibc only
    return trim


def _segment(raw: Any, piece: Piece, ids_before: int) -> Segment:
    offset = piece.start_s
    words = None
    if raw.words is not None:
        words = tuple(
            Word(
                start=_shifted(w.start, offset),
                end=_shifted(w.end, offset),
                word=w.word,
                probability=w.probability,
            )
            for w in raw.words
        )
    return Segment(
        id=raw.id + ids_before,
        start=_shifted(raw.start, offset),
        end=_shifted(raw.end, offset),
        text=raw.text,
        words=words,
        seek=raw.seek + piece.start * FRAMES_PER_SECOND // SAMPLING_RATE,
        tokens=tuple(raw.tokens),
        temperature=raw.temperature,
        avg_logprob=raw.avg_logprob,
        compression_ratio=raw.compression_ratio,
        no_speech_prob=raw.no_speech_prob,
    )


def shifted(segment: Segment, start: int) -> Segment:
    """The segment of audio that begins `start` samples into the file, timed in the file (a
    piece of a split job, worker/split_files.py)."""
    offset = start / SAMPLING_RATE
    words = segment.words
    if words is not None:
        words = tuple(
            dataclasses.replace(w, start=_shifted(w.start, offset), end=_shifted(w.end, offset))
            for w in words
        )
    return dataclasses.replace(
        segment,
        start=_shifted(segment.start, offset),
        end=_shifted(segment.end, offset),
        words=words,
        seek=segment.seek + start * FRAMES_PER_SECOND // SAMPLING_RATE
        if segment.seek is not None
        else None,
    )


def _shifted(seconds: float, offset: float) -> float:
    # The first piece's times are faster-whisper's own, untouched; later ones are rounded to the
    # millisecond so that the addition leaves no float dust (300.12000000000003).
    return seconds if not offset else round(seconds + offset, 3)
