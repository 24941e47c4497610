"""Subtitle cues: how long making them takes for an hour of speech (made-up words with times).

    .venv/bin/python bench/subtitles.py

Prints the segments, words and cues, and the CPU time of worker/subtitles.cues with the default
rules (docs/benchmarks.md, "Subtitles").
"""

from __future__ import annotations

import random
import time

from whisper_transcriber.db.transcript import Segment, Transcript, Word
from whisper_transcriber.worker.subtitles import SubtitleRules, cues

SEED = 1
HOUR_S = 3600.0
_COMMON_WORDS = (
    "the of and to a in that it is was for on are as with his they at be this from have or by "
    "one had not but what all were when we there can an your which their said if do will each "
    "about how up out them then she many some so these would other into has more her two like "
    "him see time could no make than first been its who now people my made over did down only "
    "way find use may water long little very after words called just where most know"
)
VOCABULARY = tuple(_COMMON_WORDS.split())


def made_up_hour() -> Transcript:
    """Segments of 5 to 40 words, some ending a clause or a sentence, with pauses between."""
    rng = random.Random(SEED)
    segments: list[Segment] = []
    at = 0.0
    while at < HOUR_S:
        words = []
        for _ in range(rng.randint(5, 40)):
            text = rng.choice(VOCABULARY) + rng.choice(["", "", "", "", ",", "."])
            length = 0.06 * len(text) + 0.05
            words.append(Word(at, at + length, " " + text, 0.9))
            at += length + rng.choice([0.0, 0.0, 0.05, 0.3])
        text = "".join(word.word for word in words)
        segments.append(Segment(len(segments), words[0].start, words[-1].end, text, tuple(words)))
        at += rng.choice([0.2, 1.0, 3.0])
    return Transcript("en", 1.0, at, tuple(segments))


def main() -> None:
    transcript = made_up_hour()
    words = sum(len(segment.words or ()) for segment in transcript.segments)
    started = time.process_time()
    made = cues(transcript, SubtitleRules())
    spent = time.process_time() - started
    print(
        f"{len(transcript.segments)} segments, {words} words, {transcript.duration / 3600:.2f} h: "
        f"{len(made)} cues in {spent:.2f} s CPU"
    )


if __name__ == "__main__":
    main()
