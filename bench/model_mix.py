"""Models per job: how often workers load models for a mixed queue, with and without their
preference for jobs of the models they hold (the model_switch_after_s setting).

A real `serve` with two workers, the default model and two more names for the bundled weights
(float32 and int8_float32), a memory budget that holds one of those two at a time beside the
default, and a batch whose jobs name default, a and b in turn. Reported for each setting: the
loads after the start (each worker's log line "model X loaded") and the batch's wall time.
Run from the repository root:

    .venv/bin/python bench/model_mix.py [--copies 60] [--audio FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cpu_layout  # bench/ is sys.path[0] when this script runs
from throughput import Service, copies_of

MODELS = {
    "a": {"model": "bundled", "compute_type": "float32"},
    "b": {"model": "bundled", "compute_type": "int8_float32"},
}
BUDGET_MB = "100"  # less than either: one of them at a time beside the default
ORDER = ("default", "a", "b")


def run(audio: Path, copies: int, switch_after_s: str) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as workdir:
        settings = {
            "models": json.dumps(MODELS),
            "model_memory_mb": BUDGET_MB,
            "model_switch_after_s": switch_after_s,
            "workers": "2",
        }
        service = Service(Path(workdir), None, settings, log_level="INFO")
        try:
            service.run_batch(copies_of(audio, service.media, "warmup", 2))
            files = copies_of(audio, service.media, "batch", copies)
            wall = service.run_batch(files, [ORDER[n % len(ORDER)] for n in range(copies)])
        finally:
            service.close()
        loads = (Path(workdir) / "service.log").read_text().count(" loaded (")
    return loads, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio", type=Path, default=cpu_layout.DEFAULT_AUDIO)
    parser.add_argument("--copies", type=int, default=60)
    args = parser.parse_args()
    print(f"command: {' '.join(sys.argv)}; {args.copies} jobs naming {', '.join(ORDER)} in turn")
    results = {}
    for label, switch_after_s in (("oldest first", "0"), ("prefer held (60 s)", "60")):
        loads, wall = run(args.audio, args.copies, switch_after_s)
        results[label] = (loads, wall)
        print(f"  {label}: {loads} model loads, {wall:.1f} s", flush=True)
    (base_loads, base_wall), (loads, wall) = results.values()
    print(f"loads {loads} against {base_loads}; wall time ratio {wall / base_wall:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
