"""Wake-up latency: from a job being enqueued to an idle worker claiming it.

The service runs with a fallback poll of an hour, so every pick-up is a wake-up: in-process (a job
submitted with POST /transcribe reaches the pool through the job store's wake listeners) and, on
PostgreSQL, from another process (a job enqueued by this script reaches the service through
LISTEN/NOTIFY). Latency is the job's started_at minus its created_at (one machine, one clock).

    .venv/bin/python bench/wakeup.py [--jobs 30] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from throughput import Service

from whisper_transcriber.db.announcements import listens
from whisper_transcriber.db.values import JobOptions

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "speech_a.wav"
IDLE_S = 0.5  # let the worker go back to sleep between jobs


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(round(fraction * (len(ordered) - 1)), len(ordered) - 1)]


def measure(service: Service, count: int, via_api: bool) -> list[float]:
    latencies = []
    for n in range(count):
        path = service.media / f"{'api' if via_api else 'other'}-{n:03}.wav"
        path.write_bytes(FIXTURE.read_bytes())
        time.sleep(IDLE_S)
        if via_api:
            response = service.client.post("/transcribe", json={"path": str(path)})
            response.raise_for_status()
            job_id = response.json()["id"]
        else:
            job_id = service.store.enqueue(path, JobOptions(formats=("txt",)), "bench")[0].id
        service._wait(
            lambda job_id=job_id: service.store.get(job_id).status.is_final, 60, f"job {job_id}"
        )
        job = service.store.get(job_id)
        assert job.started_at is not None
        latencies.append((job.started_at - job.created_at).total_seconds() * 1000)
    return latencies


def report(label: str, latencies: list[float]) -> None:
    print(
        f"{label}: n={len(latencies)} p50 {statistics.median(latencies):.1f} ms, "
        f"p99 {percentile(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    print(f"command: {' '.join(sys.argv)}")
    with tempfile.TemporaryDirectory() as workdir:
        service = Service(Path(workdir), args.database_url, {"poll_interval_s": "3600"})
        try:
            measure(service, 2, via_api=True)  # warm-up
            report("in-process wake-up (POST /transcribe)", measure(service, args.jobs, True))
            if listens(service.database_url):
                report(
                    "LISTEN/NOTIFY (enqueued by another process)",
                    measure(service, args.jobs, False),
                )
        finally:
            service.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
