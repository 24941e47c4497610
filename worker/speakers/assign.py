"""Speaker turns onto a transcript: a speaker for every word and segment, and segments split where
the speaker changes (at word boundaries, so times stay on the words)."""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Sequence

from whisper_transcriber.db.transcript import Segment, Transcript, Word
from whisper_transcriber.worker.speakers.diarizer import MIN_SILENCE_MS, Speech, Turn

FIRST_LABEL = "Speaker 1"


def label(number: int) -> str:
    """The label of speaker `number` (0 is the first to speak): Speaker 1, Speaker 2, ..."""
    return f"Speaker {number + 1}"


def speech_of(transcript: Transcript) -> Speech:
    """Where the transcript's words are said, in seconds: words less than a pause apart joined.
    The diarizer takes its prints there (instead of where a VAD hears speech): the prints are
    of what is labelled, and the VAD's time is saved (docs/benchmarks.md, "Speakers")."""
    pause = MIN_SILENCE_MS / 1000
    spans: list[tuple[float, float]] = []
    for segment in transcript.segments:
        for word in segment.words or ():
            if spans and word.start - spans[-1][1] < pause:
                spans[-1] = (spans[-1][0], max(spans[-1][1], word.end))
            else:
                spans.append((word.start, word.end))
    return spans


def with_speakers(transcript: Transcript, turns: Sequence[Turn], keep_words: bool) -> Transcript:
    """The transcript with speakers; without turns (no speech found, one short word) everything
    is the first speaker. `keep_words`: the job keeps its words (asked for, or for its
    subtitles); else the words, which were computed to split segments, are dropped."""
    segments: list[Segment] = []
    first_id = transcript.segments[0].id if transcript.segments else 0  # faster-whisper's: 1
    for segment in transcript.segments:
        for part in _split(segment, turns):
            segments.append(
                dataclasses.replace(
                    part, id=first_id + len(segments), words=part.words if keep_words else None
                )
            )
    return dataclasses.replace(transcript, segments=tuple(segments))


def _split(segment: Segment, turns: Sequence[Turn]) -> list[Segment]:
    """The segment as runs of one speaker's words (the segment itself, labelled, when one speaker
    says all of it or it has no words)."""
    if not segment.words:
        return [
            dataclasses.replace(segment, speaker=_speaker_at(segment.start, segment.end, turns))
        ]
    words = [
        dataclasses.replace(word, speaker=_speaker_at(word.start, word.end, turns))
        for word in segment.words
    ]
    runs: list[list[Word]] = []
    for word in words:
        if runs and runs[-1][-1].speaker == word.speaker:
            runs[-1].append(word)
        else:
            runs.append([word])
    if len(runs) == 1:
        return [dataclasses.replace(segment, words=tuple(words), speaker=words[0].speaker)]
    parts = []
    for index, run in enumerate(runs):
        text = "".join(word.word for word in run)
        parts.append(
            dataclasses.replace(
                segment,
                start=segment.start if index == 0 else run[0].start,
                end=segment.end if index == len(runs) - 1 else run[-1].end,
                text=text if index == 0 or text.startswith(" ") else " " + text,
                words=tuple(run),
                speaker=run[0].speaker,
                tokens=None,  # the segment's tokens cannot be divided between its parts
            )
        )
    return parts


def _speaker_at(start: float, end: float, turns: Sequence[Turn]) -> str:
    """The speaker of the turn that overlaps [start, end] most; with none overlapping, of the
    nearest turn; with no turns, the first speaker. Turns are in order and apart, so the ones
    that overlap lie together: found by bisection (a film has thousands of turns and words)."""
    if not turns:
        return FIRST_LABEL
    first = bisect.bisect_right(turns, start, key=lambda turn: turn.end)
    after = bisect.bisect_left(turns, end, key=lambda turn: turn.start)
    overlapping = turns[first:after]
    if overlapping:
        best = max(overlapping, key=lambda turn: min(end, turn.end) - max(start, turn.start))
    else:
        around = turns[max(first - 1, 0) : first + 1]
        best = min(around, key=lambda turn: max(turn.start - end, start - turn.end))
    return label(best.speaker)
