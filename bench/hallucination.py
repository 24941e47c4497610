"""Guards against hallucination: words the model makes up in music and silence between speech,
and the words of the speech it loses, for each set of guards (docs/benchmarks.md, "Guards").

    .venv/bin/python bench/hallucination.py [--model bundled]

Needs espeak-ng and sox. The recording: eight English sentences (espeak-ng, en-us), and between
them, in turn, 20 s of music (a chord with tremolo over pink noise), 15 s of silence, 30 s of
quieter music, 8 s of room noise; it opens with 30 s of music and ends with 20 s of silence, as a
film or a recorded meeting does. Each set of guards transcribes it through the service's engine
(the bundled tiny.en, int8, 1 thread). A word is made up when its middle lies outside every
sentence (0.5 s of slack); the speech's words lost are the word error rate of the words inside
the sentences against what was said. Time is against faster-whisper's defaults, in the same run.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from whisper_transcriber.db.transcript import Transcript
from whisper_transcriber.db.values import JobOptions
from whisper_transcriber.worker.audio_stream import SAMPLING_RATE, Samples
from whisper_transcriber.worker.engine import Engine, resolve_model
from whisper_transcriber.worker.models import fetch

SENTENCES = (
    "The committee approved the new budget for the public library after a long debate.",
    "Trains to the northern valley will run every half hour during the summer festival.",
    "Please remember to water the tomatoes before the heat of the afternoon arrives.",
    "Our guest tonight has climbed eleven mountains and written three books about them.",
    "The bakery on the corner sells fresh bread until the last loaf is gone.",
    "Scientists measured the temperature of the lake every morning for a whole year.",
    "If the bridge stays closed, the bus will take the long road through the forest.",
    "Thank you all for listening, and we will see you again next week.",
)
SLACK_S = 0.5
# The guards compared: faster-whisper's defaults first (the baseline), then one guard at a time,
# then the media-library preset (docs/guides/media-server.md).
GUARD_SETS: dict[str, dict[str, Any]] = {
    "faster-whisper's defaults": {},
    "hallucination_silence_threshold=2": {"hallucination_silence_threshold": 2.0},
    "vad_filter": {"vad_filter": True},
    "vad_filter, vad_min_silence_ms=500": {"vad_filter": True, "vad_min_silence_ms": 500},
    "no_speech_threshold=0.4": {"no_speech_threshold": 0.4},
    "log_prob_threshold=-0.5": {"log_prob_threshold": -0.5},
    "compression_ratio_threshold=1.8": {"compression_ratio_threshold": 1.8},
    "repetition_penalty=1.1, no_repeat_ngram_size=3": {
        "repetition_penalty": 1.1,
        "no_repeat_ngram_size": 3,
    },
    "vad_filter + hallucination_silence_threshold=2": {
        "vad_filter": True,
        "hallucination_silence_threshold": 2.0,
    },
}


def _sox(folder: Path, name: str, given: str, *effects: str) -> Samples:
    from faster_whisper.audio import decode_audio

    path = folder / f"{name}.wav"
    rate = ["-r", str(SAMPLING_RATE), "-c", "1"]
    subprocess.run(["sox", "-R", given, *rate, str(path), *effects], check=True)
    samples: Samples = decode_audio(str(path))
    return samples


def music(folder: Path, seconds: int, volume: float) -> Samples:
    length = str(seconds)
    chord = _sox(
        folder, f"chord{seconds}", "-n", "synth", length, "sine", "220", "tremolo", "3", "60",
        "vol", str(volume),
    )  # fmt: skip
    noise = _sox(folder, f"noise{seconds}", "-n", "synth", length, "pinknoise", "vol", "0.05")
    return np.clip(chord + noise, -1, 1).astype(np.float32)


def recording(folder: Path) -> tuple[Path, list[tuple[float, float]]]:
    """The recording's file, and where each sentence is in it (seconds)."""
    gaps = [
        music(folder, 20, 0.3),
        np.zeros(15 * SAMPLING_RATE, np.float32),
        music(folder, 30, 0.1),
        _sox(folder, "room", "-n", "synth", "8", "brownnoise", "vol", "0.02"),
    ]
    parts = [music(folder, 30, 0.3)]
    spans = []
    at = parts[0].shape[0]
    for index, sentence in enumerate(SENTENCES):
        raw = folder / f"raw{index}.wav"
        subprocess.run(
            ["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), sentence], check=True
        )
        spoken = _sox(folder, f"sentence{index}", str(raw))
        spans.append((at / SAMPLING_RATE, (at + spoken.shape[0]) / SAMPLING_RATE))
        parts.append(spoken)
        at += spoken.shape[0]
        gap = (
            gaps[index % len(gaps)] if index < len(SENTENCES) - 1 else np.zeros(20 * SAMPLING_RATE)
        )
        parts.append(gap.astype(np.float32))
        at += gap.shape[0]
    path = folder / "recording.wav"
    import wave

    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLING_RATE)
        out.writeframes((np.concatenate(parts) * 32767).astype("<i2").tobytes())
    return path, spans


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def word_error_rate(said: list[str], heard: list[str]) -> float:
    """Levenshtein distance over words, divided by the words said."""
    row = list(range(len(heard) + 1))
    for i, word in enumerate(said, start=1):
        previous, row[0] = row[0], i
        for j, other in enumerate(heard, start=1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (word != other))
    return row[-1] / max(len(said), 1)


def scored(transcript: Transcript, spans: list[tuple[float, float]]) -> tuple[int, float]:
    """(words made up outside the speech, word error rate of the words inside it)."""
    made_up = 0
    inside: list[str] = []
    for segment in transcript.segments:
        for word in segment.words or ():
            middle = (word.start + word.end) / 2
            if any(start - SLACK_S <= middle <= end + SLACK_S for start, end in spans):
                inside += _words(word.word)
            else:
                made_up += len(_words(word.word))
    said = [word for sentence in SENTENCES for word in _words(sentence)]
    return made_up, word_error_rate(said, inside)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="bundled")
    args = parser.parse_args()
    engine = Engine(fetch(resolve_model(args.model)), "cpu", "int8", cpu_threads=1)
    with tempfile.TemporaryDirectory() as tmp:
        path, spans = recording(Path(tmp))
        duration = len(np.asarray(_sox(Path(tmp), "check", str(path)))) / SAMPLING_RATE
        speech = sum(end - start for start, end in spans)
        print(
            f"{duration:.0f} s, of which {speech:.0f} s speech in {len(spans)} sentences; "
            f"model {args.model}\n"
        )
        print("| guards | words made up | WER of the speech | time |")
        print("|---|---|---|---|")
        baseline = None
        for name, guards in GUARD_SETS.items():
            # word_timestamps: every set is scored on its word times (faster-whisper's text does
            # not change with them)
            options = JobOptions(formats=("json",), word_timestamps=True, **guards)
            began = time.perf_counter()
            transcript = engine.transcribe(str(path), options)
            spent = time.perf_counter() - began
            baseline = baseline or spent
            made_up, wer = scored(transcript, spans)
            print(f"| {name} | {made_up} | {wer:.1%} | {spent / baseline:.2f} |", flush=True)


if __name__ == "__main__":
    main()
