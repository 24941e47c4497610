"""The garbage collector's full sweep in a worker process, before and after gc.freeze().

    .venv/bin/python bench/gc_pause.py [--repeat 20]

A worker imports the whole service and loads the model before its first job; every full
collection then walks all of it again. worker/process.py freezes what is loaded (gc.freeze) once
the model is up. This starts a process as a worker is started (spawn), imports what a worker
imports, loads the bundled model and transcribes one file, then times gc.collect() `repeat`
times, freezes, and times it again: the objects tracked, and the median sweep before and after
(docs/benchmarks.md, "Per-job cost").
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import statistics
import time
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "speech_a.wav"


def sweeps(repeat: int) -> tuple[int, float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        gc.collect()
        times.append((time.perf_counter() - started) * 1000)
    return len(gc.get_objects()), statistics.median(times)


def in_a_worker(repeat: int, answers: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    import whisper_transcriber.worker.process  # noqa: F401 - what a worker imports
    from whisper_transcriber.db.values import JobOptions
    from whisper_transcriber.worker.engine import Engine, resolve_model

    engine = Engine(resolve_model("bundled"), "cpu", "int8", cpu_threads=1)
    engine.transcribe(str(FIXTURE), JobOptions())
    before = sweeps(repeat)
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    after = sweeps(repeat)
    answers.put((before, after, frozen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    answers: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
    worker = context.Process(target=in_a_worker, args=(args.repeat, answers))
    worker.start()
    (objects, before_ms), (tracked, after_ms), frozen = answers.get()
    worker.join()
    print(f"full collection in a worker, median of {args.repeat}:")
    print(f"  before gc.freeze(): {objects} objects tracked, {before_ms:.1f} ms")
    print(f"  after gc.freeze():  {tracked} objects tracked ({frozen} frozen), {after_ms:.2f} ms")
    print(f"  after / before: {after_ms / before_ms:.3f}")


if __name__ == "__main__":
    main()
