"""Voice notes in batches: does running short files through the model as one batch of 30-second
windows beat running them one by one, on this machine? (docs/benchmarks.md, "Voice notes in
batches"; issue 21, point 3.)

    .venv/bin/python bench/voice_note_batches.py [--audio FILE] [--files 32] [--threads 1 2]

For each thread count, in one process with the bundled tiny.en (int8, word times on as the
service computes them): (a) faster-whisper's WhisperModel.transcribe on each file in turn;
(b) the same files in batches of 2, 4, 8 and 16: each file's features padded to one 30 s window,
the windows encoded and decoded together (faster-whisper's BatchedInferencePipeline.forward, with
timestamps, as a file's own run decodes them). Reported: milliseconds per file and (a)/(b), and
whether every file's text is the same both ways. A short file costs a whole window either way:
a batch only helps where the hardware runs a batch faster than its windows one after another.
(c) --packed: the other way to spend fewer windows, several notes joined into one window with a
second of silence between them, each word given back to the note it falls in. Five different
notes in turn; reported: ms per file against (a) on the same notes, and how many notes' texts
differ from their own run's.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cpu_layout  # bench/ is sys.path[0] when this script runs
import numpy as np

WINDOW_FRAMES = 3000  # one 30 s window of mel frames
BATCH_SIZES = (2, 4, 8, 16)


def one_by_one(model: Any, path: str, files: int) -> tuple[float, list[str]]:
    texts = []
    started = time.perf_counter()
    for _ in range(files):
        segments, _info = model.transcribe(path, word_timestamps=True)
        texts.append(" ".join(segment.text.strip() for segment in segments))
    return (time.perf_counter() - started) / files, texts


def batched(model: Any, path: str, files: int, size: int) -> tuple[float, list[str]]:
    from faster_whisper import BatchedInferencePipeline, decode_audio
    from faster_whisper.tokenizer import Tokenizer

    pipeline = BatchedInferencePipeline(model)
    _segments, info = model.transcribe(path, word_timestamps=True)
    options = dataclasses.replace(info.transcription_options, without_timestamps=False)
    tokenizer = Tokenizer(
        model.hf_tokenizer,
        model.model.is_multilingual,
        task="transcribe",
        language=info.language,
    )
    texts: list[str] = []
    started = time.perf_counter()
    for first in range(0, files, size):
        features, chunks = [], []
        for _ in range(min(size, files - first)):
            audio = decode_audio(path)
            window = model.feature_extractor(audio)[:, :WINDOW_FRAMES]
            features.append(np.pad(window, ((0, 0), (0, WINDOW_FRAMES - window.shape[1]))))
            chunks.append({"offset": 0.0, "duration": audio.shape[0] / 16000})
        for result in pipeline.forward(np.stack(features), tokenizer, chunks, options):
            texts.append(" ".join(segment["text"].strip() for segment in result))
    return (time.perf_counter() - started) / files, texts


NOTES = (
    "Call me back.",
    "I'll be there at five.",
    "Please buy milk and bread on the way home.",
    "The meeting moved to Thursday afternoon.",
    "Don't forget the keys.",
)
PACK_GAP_S = 1.0


def packed(model: Any, paths: list[str], files: int, size: int) -> tuple[float, list[str]]:
    from faster_whisper import decode_audio

    texts: list[str] = []
    started = time.perf_counter()
    for first in range(0, files, size):
        clips = [
            decode_audio(paths[n % len(paths)]) for n in range(first, min(first + size, files))
        ]
        gap = np.zeros(int(PACK_GAP_S * 16000), dtype=np.float32)
        spans, position = [], 0
        for clip in clips:
            spans.append((position / 16000, (position + clip.shape[0]) / 16000))
            position += clip.shape[0] + gap.shape[0]
        joined = np.concatenate([part for clip in clips for part in (clip, gap)])
        segments, _info = model.transcribe(joined, word_timestamps=True)
        heard: list[list[str]] = [[] for _ in clips]
        for word in (word for segment in segments for word in segment.words or ()):
            middle = (word.start + word.end) / 2
            nearest = min(
                range(len(spans)),
                key=lambda n: max(spans[n][0] - middle, middle - spans[n][1], 0.0),
            )
            heard[nearest].append(word.word)
        texts.extend("".join(words).strip() for words in heard)
    return (time.perf_counter() - started) / files, texts


def run_packed(folder: Path, files: int) -> None:
    from faster_whisper import WhisperModel

    paths = [str(voice_note(folder, f"note-{n}", text)) for n, text in enumerate(NOTES)]
    model = WhisperModel(cpu_layout.default_model_path(), "cpu", compute_type="int8", cpu_threads=1)
    one_by_one(model, paths[0], 2)  # warm
    started = time.perf_counter()
    alone = []
    for n in range(files):
        segments, _info = model.transcribe(paths[n % len(paths)], word_timestamps=True)
        alone.append(" ".join(segment.text.strip() for segment in segments))
    per_file = (time.perf_counter() - started) / files
    print(f"packed, 1 thread, {len(NOTES)} notes in turn: one by one {per_file * 1000:.0f} ms")
    for size in (4, 8):
        packed_per_file, texts = packed(model, paths, files, size)
        differ = sum(a != b for a, b in zip(alone, texts, strict=True))
        print(
            f"  {size} notes a window: {packed_per_file * 1000:.0f} ms per file, "
            f"x{per_file / packed_per_file:.2f}, {differ} of {files} texts differ"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio", type=Path, help="a short file (default: espeak-ng says one)")
    parser.add_argument("--files", type=int, default=32)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--packed", action="store_true", help="also (c), notes packed together")
    args = parser.parse_args()
    print(f"command: {' '.join(sys.argv)}; {cpu_layout.cpu_model()}")
    with tempfile.TemporaryDirectory() as folder:
        path = str(args.audio or voice_note(Path(folder)))
        run(path, args.files, args.threads)
        if args.packed:
            run_packed(Path(folder), args.files)
    return 0


def voice_note(folder: Path, name: str = "call-me-back", text: str = NOTES[0]) -> Path:
    """About a second or two of speech, as a phone's voice note might hold."""
    said, note = folder / f"{name}-said.wav", folder / f"{name}.wav"
    subprocess.run(["espeak-ng", "-w", str(said), text], check=True)
    subprocess.run(["sox", str(said), "-r", "16000", "-c", "1", str(note)], check=True)
    return note


def run(path: str, files: int, thread_counts: list[int]) -> None:
    from faster_whisper import WhisperModel

    for threads in thread_counts:
        model = WhisperModel(
            cpu_layout.default_model_path(), "cpu", compute_type="int8", cpu_threads=threads
        )
        one_by_one(model, path, 2)  # warm
        alone, texts = one_by_one(model, path, files)
        print(f"{threads} thread(s): one by one {alone * 1000:.0f} ms per file")
        for size in BATCH_SIZES:
            per_file, batch_texts = batched(model, path, files, size)
            print(
                f"  batches of {size:2}: {per_file * 1000:.0f} ms per file, "
                f"x{alone / per_file:.2f}, same text: {batch_texts == texts}"
            )


if __name__ == "__main__":
    raise SystemExit(main())
