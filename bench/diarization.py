"""Speaker labels: how right they are on synthetic conversations, and what they add to a job.

    nice -n 10 .venv/bin/python bench/diarization.py [--scene NAME ...] [--repeat 3]
                                                     [--audio ../shared/audio/jfk.flac]

The scenes of bench/conversations.py (espeak-ng voices, known turns) are made in a temporary
folder. For each: the DER (bench/der.py, collar 0.25 s) of the Diarizer's turns against the
reference (prints taken where the transcript's words are, as a diarize job takes them), with the
speaker count left to it and with num_speakers given, and the speakers it found; the DER of the
output itself (each word's time and speaker), and the share of words the transcript gives the
right speaker (words at their midpoint, the transcript's speakers mapped onto the reference's
as DER maps them). Then the cost, with one
Engine (bundled tiny.en, int8, 1 thread), the median of --repeat rounds each, rounds alternating:
Engine.transcribe with formats=("txt",) without and with diarize, and the Diarizer alone (its
pieces and turns, the file scanned beforehand as the engine scans it); the same with
word_timestamps=True on both sides (diarize turns word timestamps on by itself, so part of what
it adds is theirs). The added time is given as a ratio of the plain transcription's, by wall
time and, in brackets, by this process's CPU time (all of it on one thread: what other load on a
shared machine barely changes).

--audio (a real recording, one speaker; skipped when absent) is run too, for the speakers found
and the cost. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import conversations  # bench/ is sys.path[0] when this script runs
from der import der

from whisper_transcriber.db.transcript import Transcript
from whisper_transcriber.db.values import JobOptions
from whisper_transcriber.worker.engine import Engine, resolve_model
from whisper_transcriber.worker.media import pieces_of, scan
from whisper_transcriber.worker.speakers.assign import speech_of
from whisper_transcriber.worker.speakers.clustering import SpeakerCount
from whisper_transcriber.worker.speakers.diarizer import Diarizer, Turn

ROOT = Path(__file__).resolve().parent.parent
REAL_AUDIO = ROOT.parent / "shared" / "audio" / "jfk.flac"
THREADS = 1
COLLAR = 0.25

Reference = list[tuple[float, float, str]]


@dataclass
class Accuracy:
    true_speakers: int
    found: int
    der: float | None
    detail: str  # missed / false alarm / confusion, in % of the reference's speech
    found_given: int | None
    der_given: float | None
    der_words: float | None
    words_right: float | None


@dataclass
class Cost:
    """Median seconds per step (plain, diarized, alone, plain_words, diarized_words): wall, and
    this process's CPU time, which another process's load on the machine barely moves (every
    step runs on one thread)."""

    wall: dict[str, float]
    cpu: dict[str, float]
    speakers_in_transcript: int

    def added(self, plain: str, diarized: str, cpu: bool = False) -> float:
        """What diarize adds to a transcription, as a ratio of it."""
        times = self.cpu if cpu else self.wall
        return (times[diarized] - times[plain]) / times[plain]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scene", action="append", choices=conversations.SCENES, dest="scenes")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--audio", type=Path, default=REAL_AUDIO)
    args = parser.parse_args()
    print(f"$ {shlex.join([sys.executable, *sys.argv])}")
    print(
        f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"load {os.getloadavg()[0]:.2f}; tiny.en int8, {THREADS} thread, {args.repeat} rounds"
    )
    engine = Engine(resolve_model("bundled"), "cpu", "int8", cpu_threads=THREADS)
    diarizer = Diarizer(THREADS)
    accuracy: dict[str, Accuracy] = {}
    costs: dict[str, Cost] = {}
    durations: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        files: list[tuple[str, Path, Reference | None]] = []
        for name in args.scenes or conversations.SCENES:
            made, truth = conversations.make(name, Path(folder))
            files.append((name, made, conversations.load_reference(truth)))
        if args.audio.is_file():
            files.append((args.audio.name, args.audio, None))
        else:
            print(f"({args.audio} is absent: skipped)")
        warm_up(engine, diarizer, files[0][1])
        for name, audio, reference in files:
            durations[name] = scan(str(audio)).duration
            accuracy[name], costs[name] = measure(engine, diarizer, audio, reference, args.repeat)
            print(f"{name}: done", file=sys.stderr)
    print(f"load {os.getloadavg()[0]:.2f} at the end")
    print_tables(durations, accuracy, costs)


def warm_up(engine: Engine, diarizer: Diarizer, path: Path) -> None:
    """Loads the engine's embedder and runs every path once (onnxruntime's first run of a session
    is slower), so that no round pays for it."""
    engine.transcribe(str(path), JobOptions(formats=("txt",), diarize=True))
    engine.transcribe(str(path), JobOptions(formats=("txt",)))
    audio = scan(str(path), keep=engine.piece_samples)
    spoken = speech_of(engine.transcribe(str(path), JobOptions(word_timestamps=True)))
    with closing(pieces_of(str(path), audio, engine.piece_samples, engine.cut_search_samples)) as s:
        diarizer.turns(s, SpeakerCount(), spoken)


def measure(
    engine: Engine, diarizer: Diarizer, path: Path, reference: Reference | None, repeat: int
) -> tuple[Accuracy, Cost]:
    audio = scan(str(path), keep=engine.piece_samples)
    # Where the words are, as a diarize job finds them (its transcription is timed apart).
    spoken = speech_of(engine.transcribe(str(path), JobOptions(word_timestamps=True)))

    def turns(count: SpeakerCount) -> list[Turn]:
        with closing(
            pieces_of(str(path), audio, engine.piece_samples, engine.cut_search_samples)
        ) as stream:
            return diarizer.turns(stream, count, spoken)

    runs: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    results: dict[str, object] = {}
    plain, words = JobOptions(formats=("txt",)), JobOptions(formats=("txt",), word_timestamps=True)
    steps: dict[str, Callable[[], object]] = {
        "plain": lambda: engine.transcribe(str(path), plain),
        "diarized": lambda: engine.transcribe(str(path), with_diarize(plain)),
        "plain_words": lambda: engine.transcribe(str(path), words),
        "diarized_words": lambda: engine.transcribe(str(path), with_diarize(words)),
        "alone": lambda: turns(SpeakerCount()),
    }
    for _ in range(repeat):
        for key, step in steps.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            results[key] = step()
            runs.setdefault(key, []).append(time.perf_counter() - started)
            cpu.setdefault(key, []).append(time.process_time() - started_cpu)
    diarized, diarized_words = results["diarized"], results["diarized_words"]
    assert isinstance(diarized, Transcript) and isinstance(diarized_words, Transcript)
    assert diarized.note is None, diarized.note  # speakers were made, not given up
    cost = Cost(
        {key: statistics.median(times) for key, times in runs.items()},
        {key: statistics.median(times) for key, times in cpu.items()},
        len(diarized.speakers),
    )
    # The turns are the same every time (no randomness): judged on one more, untimed.
    return judged(turns(SpeakerCount()), reference, turns, diarized_words), cost


def with_diarize(options: JobOptions) -> JobOptions:
    return options.model_copy(update={"diarize": True})


def judged(
    found: list[Turn],
    reference: Reference | None,
    turns: Callable[[SpeakerCount], list[Turn]],
    transcript: Transcript,
) -> Accuracy:
    speakers = len({turn.speaker for turn in found})
    if reference is None:  # the real recording: one speaker, no reference turns
        return Accuracy(1, speakers, None, "", None, None, None, None)
    hypothesis = [(turn.start, turn.end, turn.speaker) for turn in found]
    error = der(reference, hypothesis, collar=COLLAR)
    true_speakers = len({speaker for _, _, speaker in reference})
    given = turns(SpeakerCount(exact=true_speakers))
    error_given = der(reference, [(t.start, t.end, t.speaker) for t in given], collar=COLLAR)
    detail = " / ".join(
        f"{100 * part / error.total:.1f}"
        for part in (error.missed, error.false_alarm, error.confusion)
    )
    return Accuracy(
        true_speakers,
        speakers,
        error.rate,
        detail,
        len({turn.speaker for turn in given}),
        error_given.rate,
        der(reference, said_by(transcript), collar=COLLAR).rate,
        words_right(transcript, reference),
    )


def said_by(transcript: Transcript) -> list[tuple[float, float, str | None]]:
    """The output as a diarization: each word's time and speaker."""
    return [(w.start, w.end, w.speaker) for s in transcript.segments for w in s.words or ()]


def words_right(transcript: Transcript, reference: Reference) -> float | None:
    """The share of words (those said where the reference has someone speaking) labelled with
    the reference's speaker, the labels mapped as DER maps them (no collar)."""
    words = [word for segment in transcript.segments for word in segment.words or ()]
    mapping = der(reference, said_by(transcript), collar=0.0).mapping
    right = heard = 0
    for word in words:
        middle = (word.start + word.end) / 2
        speaking = {speaker for start, end, speaker in reference if start <= middle < end}
        if speaking:
            heard += 1
            right += mapping.get(word.speaker) in speaking
    return right / heard if heard else None


def print_tables(
    durations: dict[str, float], accuracy: dict[str, Accuracy], costs: dict[str, Cost]
) -> None:
    def percent(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f} %"

    print()
    print(
        f"| scene | audio | speakers | found | DER (collar {COLLAR} s) | missed / false alarm / "
        "confusion % | found, num_speakers given | DER, num_speakers given | DER of the output's "
        "words | words labelled right |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, a in accuracy.items():
        print(
            f"| {name} | {durations[name]:.1f} s | {a.true_speakers} | {a.found} | "
            f"{percent(a.der)} | {a.detail or '-'} | {a.found_given or '-'} | "
            f"{percent(a.der_given)} | {percent(a.der_words)} | {percent(a.words_right)} |"
        )
    print()
    print(
        "| scene | transcribe | + diarize | added / transcribe (CPU) | Diarizer alone / transcribe "
        "(CPU) | transcribe, words | + diarize, words | added / transcribe, words (CPU) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, c in costs.items():
        w = c.wall
        print(
            f"| {name} | {w['plain']:.2f} s | {w['diarized']:.2f} s | "
            f"{c.added('plain', 'diarized'):.2f} ({c.added('plain', 'diarized', cpu=True):.2f}) | "
            f"{w['alone'] / w['plain']:.2f} ({c.cpu['alone'] / c.cpu['plain']:.2f}; "
            f"{w['alone']:.2f} s) | {w['plain_words']:.2f} s | {w['diarized_words']:.2f} s | "
            f"{c.added('plain_words', 'diarized_words'):.2f} "
            f"({c.added('plain_words', 'diarized_words', cpu=True):.2f}) |"
        )


if __name__ == "__main__":
    main()
