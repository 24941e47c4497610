"""Inbox pick-up latency: from a file's last write to its job being claimed, beyond the settle time.

A real `serve` watches one inbox, with inotify (watchdog's native observer) or by polling. Files
are dropped one at a time (each written in chunks, then closed), each after the previous one was
claimed and a random pause of up to one poll interval; latency = the job's started_at - the moment the file was closed - settle_s. One machine,
one clock. With polling, up to one poll interval is expected on top.

    .venv/bin/python bench/settle_latency.py [--files 30] [--poll-interval 2] [--database-url URL]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from throughput import Service
from wakeup import percentile

from whisper_transcriber.db.values import JobQuery

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "speech_a.wav"
CHUNK = 16 * 1024
WAIT_S = 120.0
POLL_S = 0.02


def drop(path: Path, data: bytes) -> float:
    """Write the file in chunks, as a copy does; the time of its last write."""
    with path.open("wb") as out:
        for start in range(0, len(data), CHUNK):
            out.write(data[start : start + CHUNK])
            out.flush()
    return time.time()


def measure(service: Service, count: int, settle_s: float, jitter_s: float) -> list[float]:
    data = FIXTURE.read_bytes()
    latencies = []
    for n in range(-1, count):  # file -1 warms up: the workers may still be loading the model
        # Drops at random moments: otherwise they lock onto the polling observer's rhythm.
        time.sleep(random.uniform(0, jitter_s))
        last_write = drop(service.inbox / f"drop-{n:03}.wav", data)
        deadline = time.monotonic() + WAIT_S
        while True:
            claimed = [
                job for job in service.store.list_jobs(JobQuery(), 1) if job.started_at is not None
            ]
            if claimed and claimed[0].source_path.endswith(f"drop-{n:03}.wav"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"file {n} was not claimed within {WAIT_S} s")
            time.sleep(POLL_S)  # this script's own wait; the service does not poll the database
        started = claimed[0].started_at
        assert started is not None
        if n >= 0:
            latencies.append(started.timestamp() - last_write - settle_s)
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=30)
    parser.add_argument("--settle", type=float, default=2.0)
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    print(f"command: {' '.join(sys.argv)}")
    modes = {"inotify": "", f"polling every {args.poll_interval:g} s": (
        f"observer=polling&poll_interval_s={args.poll_interval}"
    )}  # fmt: skip
    for label, inbox_options in modes.items():
        with tempfile.TemporaryDirectory() as workdir:
            service = Service(
                Path(workdir),
                args.database_url,
                settings={"settle_s": str(args.settle), "formats": "txt"},
                inbox_options=inbox_options,
            )
            try:
                seconds = measure(service, args.files, args.settle, args.poll_interval)
                latencies = [1000 * s for s in seconds]
            finally:
                service.close()
        print(
            f"{label}: beyond the {args.settle:g} s settle time, p50 {percentile(latencies, 0.5):.0f}"
            f" ms, p99 {percentile(latencies, 0.99):.0f} ms, max {max(latencies):.0f} ms, "
            f"mean {statistics.mean(latencies):.0f} ms ({len(latencies)} files)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
