"""One long file across every worker: cut at silences into piece jobs that any worker on any
machine may take, and their transcripts joined in order into the file's own.

The worker that claimed the file (the parent job) detects its language, cuts it, queues the
pieces (db JobStore.add_pieces) and then works on them itself beside the others, so a pool of
one still finishes. A piece is a job: it has its own lease, attempts and retries, so a worker
lost mid-piece costs that piece, not the film. The parent's attempt keeps its own lease while
it waits, reports progress over all pieces, and stops when it is cancelled (its pieces are
removed with it). A later attempt of the parent keeps the pieces already done.

Each piece starts without the text before it (faster-whisper carries that from one 30 s window
to the next): the price of running them side by side, measured in docs/benchmarks.md ("Long
files split across workers"). The split_after_s setting turns it on; off, a file is
transcribed exactly as before.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from functools import partial

import numpy as np

from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.transcript import Segment, Transcript
from whisper_transcriber.db.values import JobOptions, JobRecord
from whisper_transcriber.worker.audio_stream import (
    SAMPLING_RATE,
    Samples,
    blocks,
    pieces,
    quietest_point,
)
from whisper_transcriber.worker.engine import Engine
from whisper_transcriber.worker.media import declared_duration, scan
from whisper_transcriber.worker.patience import patiently

log = logging.getLogger(__name__)

# A piece ends in the longest pause of its last this many seconds: long enough that speech
# nearly always pauses somewhere in it.
CUT_SEARCH_S = 30.0
# How often the parent looks at pieces that other workers hold.
PIECES_POLL_S = 0.5


@dataclass(frozen=True)
class SplitRules:
    """When a file is split (after_s: longer than this; None: never) and how long a piece is."""

    after_s: float | None = None
    piece_s: float = 180.0

    def may_split(self, job: JobRecord) -> bool:
        """Whether this job is one that could be split, before its file is looked at: not a
        piece itself, not a language detection, and not with speaker labels (which are found
        over the whole file)."""
        options = job.options
        return (
            self.after_s is not None
            and job.parent_id is None
            and options.span is None
            and not options.detect_only
            and not options.diarize
        )


# Files are transcribed whole (the split_after_s setting unset).
NO_SPLIT = SplitRules()


class PieceFailed(Exception):
    """A piece failed for good (or was cancelled on its own): the file cannot be whole."""


def silence_point(samples: Samples) -> int:
    """Index of the middle of the longest pause in `samples` by faster-whisper's voice activity
    detector (its edges count: speech may start late or end early); the quietest moment when
    the detector hears speech throughout."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    speech = get_speech_timestamps(samples, VadOptions(min_silence_duration_ms=100))
    edges = [0, *(bound for chunk in speech for bound in (chunk["start"], chunk["end"]))]
    edges.append(int(samples.shape[0]))
    gaps = [(edges[i + 1] - edges[i], edges[i]) for i in range(0, len(edges), 2)]
    length, begins = max(gaps)
    if length <= 0:
        return quietest_point(samples)
    return int(begins + length // 2)


def split_spans(path: str, piece_s: float) -> list[tuple[int, int]]:
    """The file cut into pieces of at most piece_s seconds, each cut in a pause: (first sample,
    the one after the last) of each. Decodes the file once, holding one piece at a time."""
    length = int(piece_s * SAMPLING_RATE)
    search = min(int(CUT_SEARCH_S * SAMPLING_RATE), length // 2)
    with closing(pieces(blocks(path), length, search, silence_point)) as stream:
        return [(piece.start, piece.end) for piece in stream]


@dataclass
class Splitter:
    """The parent's side of a split job, for one attempt (worker/job_runner.py makes it)."""

    store: JobStore
    job: JobRecord
    rules: SplitRules
    # Runs a claimed piece as any job is run (job_runner.run_job), recording its outcome.
    run_piece: Callable[[JobRecord], None]
    # Hears the fraction of the file done; raises to stop (the attempt was lost or cancelled).
    on_progress: Callable[[float], None]
    # Waits up to so many seconds, returning early when the attempt is lost.
    wait: Callable[[float], object]

    def wants(self, path: str) -> bool:
        """The file's header states a length above the threshold (a file that does not say is
        transcribed whole: it is not worth a decode to find out)."""
        stated = declared_duration(path)
        return self.rules.after_s is not None and stated is not None and stated > self.rules.after_s

    def transcribe(
        self, engine: Engine, path: str, on_language: Callable[[str], None] | None
    ) -> Transcript:
        """The whole file's transcript, from its pieces' (queued here unless an earlier
        attempt did)."""
        audio = scan(path, max_duration_s=engine.max_audio_duration_s)
        detected = engine.language_of(path, self.job.options)
        if on_language is not None:
            on_language(detected.language)
        if audio.silent:
            return Transcript(detected.language, detected.probability, audio.duration, ())
        existing = self._pieces()
        if not existing:
            spans = split_spans(path, self.rules.piece_s)
            options = self.job.options.model_copy(update={"language": detected.language})
            log.info(
                "job %s: %.0f s of audio split into %s pieces for any worker",
                self.job.id,
                audio.duration,
                len(spans),
            )
            existing = self._add(spans, options, os.stat(path).st_ino)
        done = self._until_done(existing, audio.samples)
        transcript = Transcript(
            language=detected.language,
            language_probability=detected.probability,
            duration=audio.duration,
            segments=self._joined(done),
        )
        return transcript if self.job.options.keeps_words else transcript.without_words()

    def _pieces(self) -> list[JobRecord]:
        return patiently(lambda: self.store.pieces(self.job.id), self.job.id)

    def _add(
        self, spans: list[tuple[int, int]], options: JobOptions, inode: int
    ) -> list[JobRecord]:
        add = partial(self.store.add_pieces, self.job.id, self.job.attempts, spans, options, inode)
        return patiently(add, self.job.id)

    def _until_done(self, current: list[JobRecord], total_samples: int) -> list[JobRecord]:
        """The pieces once all are done: this worker takes each one that is due, and waits
        for those that others hold."""
        worker_id = self.job.worker_id or ""
        while True:
            if not current:  # removed with the parent: it was cancelled or has ended
                raise PieceFailed("the job's pieces were removed (it was cancelled)")
            for number, piece in enumerate(current, 1):
                if piece.status in (JobStatus.FAILED, JobStatus.CANCELLED):
                    raise PieceFailed(_failure(piece, number, len(current)))
            self.on_progress(_progress(current, total_samples))
            if all(piece.status is JobStatus.DONE for piece in current):
                return current
            claim = partial(self.store.claim, worker_id, piece_of=self.job.id)
            claimed = patiently(claim, self.job.id)
            if claimed is not None:
                self.run_piece(claimed)
            else:
                self.wait(PIECES_POLL_S)
            current = self._pieces()

    def _joined(self, done: list[JobRecord]) -> tuple[Segment, ...]:
        segments: list[Segment] = []
        for piece in done:
            found = patiently(partial(self.store.transcript, piece.id), self.job.id)
            if found is None:  # done pieces have theirs until the parent ends
                raise PieceFailed(f"piece job {piece.id} is done but has no transcript")
            before = len(segments)
            segments.extend(  # numbered from 1 on, as faster-whisper numbers a file's
                dataclasses.replace(segment, id=before + index)
                for index, segment in enumerate(found.segments, start=1)
            )
        return tuple(segments)


def _failure(piece: JobRecord, number: int, count: int) -> str:
    start, end = piece.options.span or (0, 0)
    reason = piece.error or piece.note or piece.status.value
    return (
        f"piece {number} of {count} ({start / SAMPLING_RATE:.0f}-{end / SAMPLING_RATE:.0f} s) "
        f"{piece.status.value}: {reason}"
    )


def _progress(current: list[JobRecord], total_samples: int) -> float:
    """The fraction of the file's samples transcribed, over every piece."""
    if total_samples <= 0:
        return 0.0
    done = 0.0
    for piece in current:
        start, end = piece.options.span or (0, 0)
        fraction = 1.0 if piece.status is JobStatus.DONE else piece.progress
        done += (end - start) * fraction
    return float(np.clip(done / total_samples, 0.0, 1.0))
