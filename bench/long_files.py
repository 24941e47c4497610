"""One long file: today's sequential path, the split path (split_after_s: pieces for every
worker) and faster-whisper's batched inference, for a 10-minute and a 60-minute recording
(docs/benchmarks.md, "Long files split across workers").

    .venv/bin/python bench/long_files.py [--minutes 10 60] [--piece-s 180]

Needs espeak-ng and sox. The recording: English prose (the docstrings of Python's standard
library, the same text every run) read by espeak-ng in two voices taking turns by paragraph,
16 kHz mono WAV. Measured on it, each from the same file:
(a) sequential: a real `serve` with 2 workers and splitting off: one worker transcribes the file
    whole, as the service always has (the other idles); from POST /transcribe to the job done;
(a') the same again, in a fresh service: how far the text of one path moves between runs (the
    sampling that faster-whisper falls back to on a window it decodes badly is not repeatable);
(b) split: the same service with split_after_s below the file's length: its pieces go to both
    workers; from POST /transcribe to the job done;
(c) batched: faster-whisper's BatchedInferencePipeline in this process with 2 threads (the
    whole machine) on the same model, word times on as the service computes them.
Reported: each wall time and its speed-up over (a); the word error rate of (a'), (b) and (c)
against (a)'s text (the fidelity cost; (a') is the noise floor), and of each against the text
read (the accuracy). --no-fallback: the service's windows are never decoded again by sampling.
Target (issue 21): (b) at least 1.7 x (a) with a WER against (a) under 3 %.
"""

from __future__ import annotations

import argparse
import inspect
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import cpu_layout  # bench/ is sys.path[0] when this script runs
import numpy as np
from throughput import Service, copies_of

from whisper_transcriber.db.values import JobQuery

WORDS_PER_MINUTE = 160  # espeak-ng's -s: words read per minute
VOICES = ("en-us", "en-gb")
# A window is decoded again by sampling when its text compresses too well (a loop) or the model
# is unsure of it; thresholds no window reaches leave every window at temperature 0.
NO_FALLBACK: dict[str, object] = {"compression_ratio_threshold": 100, "log_prob_threshold": -100}


def prose(words: int) -> list[str]:
    """Paragraphs of English from the standard library's module docstrings, in name order,
    `words` words in all (about 9,700 before they start again)."""
    paragraphs: list[str] = []
    for module in sorted(name for name in sys.stdlib_module_names if not name.startswith("_")):
        if module in ("antigravity", "this", "idlelib", "turtledemo", "test"):
            continue
        try:
            with warnings.catch_warnings():  # deprecated modules say so when imported
                warnings.simplefilter("ignore")
                doc = inspect.getdoc(__import__(module)) or ""
        except Exception:
            continue
        for block in doc.split("\n\n"):
            text = " ".join(block.split())
            # sentences, not tables, code or lists
            if len(text.split()) >= 10 and re.fullmatch(r"[A-Za-z0-9 ,.;:'\"()?!\-]+", text):
                paragraphs.append(text)
    chosen: list[str] = []
    total = 0
    while total < words:
        for paragraph in paragraphs:
            chosen.append(paragraph)
            total += len(paragraph.split())
            if total >= words:
                break
    return chosen


def recording(folder: Path, minutes: int) -> tuple[Path, str]:
    """The WAV file and the text read in it."""
    paragraphs = prose(minutes * WORDS_PER_MINUTE)
    parts = []
    for n, paragraph in enumerate(paragraphs):
        part = folder / f"part-{n:04}.wav"
        subprocess.run(
            ["espeak-ng", "-v", VOICES[n % 2], "-s", str(WORDS_PER_MINUTE), "-w", str(part)],
            input=paragraph,
            text=True,
            check=True,
        )
        parts.append(str(part))
    path = folder / f"long-{minutes}min.wav"
    subprocess.run(["sox", *parts, "-r", "16000", "-c", "1", str(path)], check=True)
    for part in parts:
        Path(part).unlink()
    return path, " ".join(paragraphs)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def word_error_rate(said: list[str], heard: list[str]) -> float:
    """Levenshtein distance over words divided by the words said; each row of the table at
    once (an insertion run along a row is a running minimum), for transcripts of 10,000 words."""
    vocabulary: dict[str, int] = {}
    first = np.array([vocabulary.setdefault(w, len(vocabulary)) for w in said], dtype=np.int64)
    second = np.array([vocabulary.setdefault(w, len(vocabulary)) for w in heard], dtype=np.int64)
    columns = np.arange(len(second) + 1)
    row = columns.copy()
    for i, word in enumerate(first, start=1):
        best = np.empty_like(row)
        best[0] = i
        best[1:] = np.minimum(row[1:] + 1, row[:-1] + (second != word))
        row = np.minimum.accumulate(best - columns) + columns
    return float(row[-1]) / max(len(first), 1)


def service_run(
    audio: Path, settings: dict[str, str], options: dict[str, object]
) -> tuple[float, str]:
    """Wall seconds from the request to the job done, and its text."""
    with tempfile.TemporaryDirectory() as workdir:
        service = Service(Path(workdir), None, {"workers": "2", **settings}, log_level="INFO")
        try:
            # both workers warm, their models loaded
            service.run_batch(copies_of(cpu_layout.DEFAULT_AUDIO, service.media, "warmup", 2))
            target = Path(shutil.copy(audio, service.media))
            wall = service.run_batch([target], options=options)
            job = service.store.list_jobs(JobQuery(), 1)[0]
            transcript = service.store.transcript(job.id)
            assert transcript is not None
            return wall, transcript.text
        finally:
            service.close()


def batched_run(audio: Path) -> tuple[float, str]:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    model = WhisperModel(
        str(cpu_layout.default_model_path()), "cpu", compute_type="int8", cpu_threads=2
    )
    pipeline = BatchedInferencePipeline(model)
    started = time.monotonic()
    segments, _ = pipeline.transcribe(str(audio), batch_size=8, word_timestamps=True)
    text = " ".join(segment.text.strip() for segment in segments)
    return time.monotonic() - started, text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, nargs="+", default=[10, 60])
    parser.add_argument("--piece-s", default="180")
    parser.add_argument("--keep", type=Path, help="a folder to write the texts into")
    parser.add_argument(
        "--no-fallback",
        action="store_true",
        help="the service's jobs never fall back to sampling (guards that never trigger it), "
        "so that a path gives the same text every run; batched inference never does",
    )
    args = parser.parse_args()
    print(f"command: {' '.join(sys.argv)}")
    for minutes in args.minutes:
        with tempfile.TemporaryDirectory() as folder:
            audio, read = recording(Path(folder), minutes)
            seconds = float(
                subprocess.run(
                    ["soxi", "-D", str(audio)], capture_output=True, text=True, check=True
                ).stdout
            )
            print(f"\n{minutes}-minute recording: {seconds:.0f} s, {len(read.split())} words read")
            options: dict[str, object] = NO_FALLBACK if args.no_fallback else {}
            sequential, sequential_text = service_run(audio, {}, options)
            # The same path again: how far its text moves between runs (the sampling fallback).
            again, again_text = service_run(audio, {}, options)
            split, split_text = service_run(
                audio, {"split_after_s": "60", "split_piece_s": args.piece_s}, options
            )
            batched, batched_text = batched_run(audio)
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                for name, text in (
                    ("read", read),
                    ("sequential", sequential_text),
                    ("sequential-again", again_text),
                    ("split", split_text),
                    ("batched", batched_text),
                ):
                    (args.keep / f"{minutes}min-{name}.txt").write_text(text)
            reference = _words(sequential_text)
            truth = _words(read)
            for label, wall, text in (
                ("sequential (a)", sequential, sequential_text),
                ("sequential again (a')", again, again_text),
                (f"split, {args.piece_s} s pieces (b)", split, split_text),
                ("batched, 2 threads (c)", batched, batched_text),
            ):
                words = _words(text)
                print(
                    f"  {label:32} {wall:7.1f} s  x{sequential / wall:4.2f}  "
                    f"WER vs (a) {word_error_rate(reference, words):6.2%}  "
                    f"WER vs text read {word_error_rate(truth, words):6.2%}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
