"""Who speaks when in a file's audio, a piece at a time: a voice print per 0.8 s of speech (where
the transcript's words are), prints clustered into speakers, consecutive prints of one speaker
joined into turns.

Only the prints (1 KB per 0.8 s of speech) outlive a piece, so a film costs what its pieces cost."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from whisper_transcriber.worker.audio_stream import SAMPLING_RATE, Piece, Samples
from whisper_transcriber.worker.speakers.clustering import (
    Labels,
    SpeakerCount,
    cluster,
    nearest,
    unit,
)
from whisper_transcriber.worker.speakers.embedder import (
    BATCH,
    HOP,
    WINDOW_FRAMES,
    WINDOW_SAMPLES,
    Embedder,
    Features,
    log_mel,
)

# Speech: words a sixth of a second apart are apart, so that a stretch of speech holds one voice
# as often as it can; a stretch shorter than a tenth of a second is not heard.
MIN_SILENCE_MS = 150
MIN_SPEECH_MS = 100
# Prints side by side, one per window, each window's own 0.8 s.
WINDOW_STEP = WINDOW_FRAMES * HOP
# What is clustered: two neighbouring prints (1.6 s) averaged; one alone varies too much with
# what is said, and more would mix the voices of short turns.
CHUNK_WINDOWS = 2


Speech = Sequence[tuple[float, float]]


@dataclass(frozen=True)
class Turn:
    """One speaker's stretch of speech, in seconds; speakers numbered from 0 as they first speak."""

    start: float
    end: float
    speaker: int


@dataclass(frozen=True)
class _Window:
    start: int  # the samples this print speaks for, in the whole file
    end: int
    region: int


class Diarizer:
    """The embedder, loaded once per worker process, and the steps around it."""

    def __init__(self, threads: int = 0) -> None:
        self.embedder = Embedder(threads)
        self.threads = threads

    def turns(self, pieces: Iterable[Piece], count: SpeakerCount, speech: Speech) -> list[Turn]:
        """Who speaks when in the pieces; speech: where, in seconds (the transcript's words,
        assign.speech_of: prints of what is labelled, and no VAD to run). numpy's BLAS keeps to
        the worker's threads meanwhile: its own pool takes every core for the small products
        here, and on a machine whose cores the pool's workers share that cost 1.5 times the time
        (docs/benchmarks.md, "Speakers")."""
        if self.threads <= 0:
            return self._turns(pieces, count, speech)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=self.threads, user_api="blas"):
            return self._turns(pieces, count, speech)

    def _turns(self, pieces: Iterable[Piece], count: SpeakerCount, speech: Speech) -> list[Turn]:
        windows: list[_Window] = []
        batches = _Batches(self.embedder)
        chunks: list[tuple[int, ...]] = []
        region = 0
        for piece in pieces:
            for start, end in _regions_within(speech, piece.start, len(piece.samples)):
                features, owned = _region_windows(piece.samples, start, end)
                first = len(windows)
                windows.extend(_Window(piece.start + a, piece.start + b, region) for a, b in owned)
                batches.add(features)
                chunks.extend(_chunks(first, len(owned)))
                region += 1
        if not windows:
            return []
        window_prints = batches.prints()
        chunk_prints = np.stack([window_prints[list(chunk)].mean(axis=0) for chunk in chunks])
        _labels, centres = cluster(unit(chunk_prints), count)
        return _joined(windows, nearest(window_prints, centres))


class _Batches:
    """Windows embedded about BATCH at a time, whichever stretches of speech and pieces they come
    from: a call of the embedder costs about as much as 4 more windows however few it holds (an
    LSTM's steps are sequential), and most stretches hold 1 to 8 windows (docs/benchmarks.md,
    "Speakers")."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.waiting: list[Features] = []
        self.done: list[Features] = []

    def add(self, windows: Features) -> None:
        self.waiting.append(windows)
        if sum(w.shape[0] for w in self.waiting) >= BATCH:
            self._embed_waiting()

    def prints(self) -> Features:
        """Every window's print, in the order the windows were added."""
        self._embed_waiting()
        return np.concatenate(self.done)

    def _embed_waiting(self) -> None:
        if self.waiting:
            self.done.append(self.embedder.embed(np.concatenate(self.waiting)))
            self.waiting = []


def _regions_within(speech: Speech, offset: int, length: int) -> list[tuple[int, int]]:
    """The spans of speech (seconds in the file) inside a piece, as sample indices in it."""
    regions = []
    for start_s, end_s in speech:
        start = max(round(start_s * SAMPLING_RATE) - offset, 0)
        end = min(round(end_s * SAMPLING_RATE) - offset, length)
        if end - start >= MIN_SPEECH_MS * SAMPLING_RATE // 1000:
            regions.append((start, end))
    return regions


def _region_windows(
    samples: Samples, start: int, end: int
) -> tuple[Features, list[tuple[int, int]]]:
    """The region's windows (n x frames x bands) and the span each speaks for. Windows lie side
    by side from the start; the last one ends at the region's end (overlapping the one before);
    a region shorter than a window is heard in a window centred on it."""
    if end - start < WINDOW_SAMPLES:
        centre = (start + end) // 2
        left = max(0, min(centre - WINDOW_SAMPLES // 2, samples.shape[0] - WINDOW_SAMPLES))
        heard = samples[left : left + WINDOW_SAMPLES]
        if heard.shape[0] < WINDOW_SAMPLES:  # the whole piece is shorter: silence after it
            heard = np.concatenate([heard, np.zeros(WINDOW_SAMPLES - heard.shape[0], np.float32)])
        return log_mel(heard)[np.newaxis, :WINDOW_FRAMES], [(start, end)]
    last = start + (end - start - WINDOW_SAMPLES) // HOP * HOP  # on the frame grid
    starts = list(range(start, last + 1, WINDOW_STEP))
    if starts[-1] != last:
        starts.append(last)
    frames = log_mel(samples[start : last + WINDOW_SAMPLES])
    offsets = [(s - start) // HOP for s in starts]
    features = np.stack([frames[o : o + WINDOW_FRAMES] for o in offsets])
    bounds = [start, *starts[1:], end]
    if len(starts) > 1 and starts[-1] - starts[-2] < WINDOW_STEP:  # the last one overlaps
        bounds[-2] = starts[-2] + WINDOW_STEP
    return features, list(itertools.pairwise(bounds))


def _chunks(first: int, count: int) -> list[tuple[int, ...]]:
    """Neighbouring windows of one region, CHUNK_WINDOWS at a time, each window in some chunk."""
    if count <= CHUNK_WINDOWS:
        return [tuple(range(first, first + count))]
    return [
        tuple(range(i, i + CHUNK_WINDOWS)) for i in range(first, first + count - CHUNK_WINDOWS + 1)
    ]


def _joined(windows: list[_Window], labels: Labels) -> list[Turn]:
    """Windows in order, neighbours of one speaker joined; speakers renumbered as they appear."""
    order: dict[int, int] = {}
    turns: list[Turn] = []
    previous: _Window | None = None
    for window, label in zip(windows, labels.tolist(), strict=True):
        speaker = order.setdefault(int(label), len(order))
        start, end = window.start / SAMPLING_RATE, window.end / SAMPLING_RATE
        if (
            turns
            and previous is not None
            and turns[-1].speaker == speaker
            and previous.region == window.region
        ):
            turns[-1] = Turn(turns[-1].start, end, speaker)
        else:
            turns.append(Turn(start, end, speaker))
        previous = window
    return turns
