"""Silent recordings: the engine's silence check against running the model over the same audio.

    .venv/bin/python bench/silence.py [--minutes 30] [--repeat 3]

Writes a WAV of digital silence, then times (a) faster-whisper's WhisperModel.transcribe over its
samples (what the service did before it checked for silence) and (b) the service's
Engine.transcribe, which decodes, finds the file silent and returns an empty transcript. Same
model (bundled tiny.en, int8, 1 thread), same process; rounds alternate. Prints both times, the
words the model wrote, and the ratio (b) / (a).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import wave
from pathlib import Path

from faster_whisper.audio import decode_audio

from whisper_transcriber.db.values import JobOptions
from whisper_transcriber.worker.engine import Engine, resolve_model, transcribe_kwargs


def silent_wav(path: Path, seconds: int) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        second = bytes(2 * 16_000)
        for _ in range(seconds):
            out.writeframes(second)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    engine = Engine(resolve_model("bundled"), "cpu", "int8", cpu_threads=1)
    options = JobOptions()
    with tempfile.TemporaryDirectory() as folder:
        path = str(silent_wav(Path(folder) / "silence.wav", args.minutes * 60))
        model_s, engine_s, words = [], [], ""
        for _ in range(args.repeat):
            started = time.perf_counter()
            segments, _info = engine.model.transcribe(
                decode_audio(path), **transcribe_kwargs(options)
            )
            words = " ".join(segment.text.strip() for segment in segments)
            model_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            transcript = engine.transcribe(path, options)
            engine_s.append(time.perf_counter() - started)
            assert transcript.text == "", transcript.text
    print(f"{args.minutes} min of digital silence, {args.repeat} rounds, tiny.en int8 x 1 thread")
    print(
        f"(a) model over the samples: median {statistics.median(model_s):.2f} s; it wrote "
        f"{len(words.split())} words: {words[:60]!r}"
    )
    print(f"(b) engine with the silence check: median {statistics.median(engine_s):.2f} s, empty")
    print(f"ratio (b)/(a): {statistics.median(engine_s) / statistics.median(model_s):.3f}")


if __name__ == "__main__":
    main()
