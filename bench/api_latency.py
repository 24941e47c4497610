"""API responsiveness while every worker transcribes, and the enqueue rate of POST /transcribe.

A real `serve` (default layout: one single-threaded worker per core). First, with the workers
idle, GET /jobs/{id} is timed N times: the baseline. Then long files are queued so that every
worker is busy for the whole measurement, and GET /jobs/{id} is timed N times again (checking
that all workers stay busy). Last, M distinct files are submitted by path with POST /transcribe
as fast as one client can, for the enqueue rate. Target: p99 under 25 ms while every worker is busy.

    .venv/bin/python bench/api_latency.py [--requests 500] [--enqueue 200] [--database-url URL]
        [--niceness 0 10]

--niceness measures each worker_niceness in turn (the workers at the API's priority, then below).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import wave
from pathlib import Path

from throughput import Service, usable_cores
from wakeup import percentile

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "speech_a.wav"
LONG_REPEATS = 60  # about four minutes of speech per long file


def long_file(path: Path) -> Path:
    with wave.open(str(FIXTURE), "rb") as source:
        params, frames = source.getparams(), source.readframes(source.getnframes())
    with wave.open(str(path), "wb") as out:
        out.setparams(params)
        for _ in range(LONG_REPEATS):
            out.writeframes(frames)
    return path


def timed_gets(service: Service, job_id: int, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        response = service.client.get(f"/jobs/{job_id}")
        latencies.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return latencies


def busy_workers(service: Service) -> int:
    text = service.client.get("/metrics").text
    for line in text.splitlines():
        if line.startswith('whisper_transcriber_worker_state{state="busy"}'):
            return int(float(line.split()[-1]))
    return 0


def summary(latencies: list[float]) -> str:
    return (
        f"p50 {percentile(latencies, 0.5):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms, "
        f"max {max(latencies):.1f} ms, mean {statistics.mean(latencies):.1f} ms"
    )


def measure(args: argparse.Namespace, niceness: int) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        settings = {"formats": "txt", "worker_niceness": str(niceness)}
        service = Service(Path(workdir), args.database_url, settings=settings)
        try:
            first = shutil.copy(FIXTURE, service.media / "first.wav")
            job_id = service.client.post("/transcribe", json={"path": str(first)}).json()["id"]
            deadline = time.monotonic() + 120
            while service.client.get(f"/jobs/{job_id}").json()["status"] != "done":
                if time.monotonic() > deadline:
                    raise RuntimeError("the first job did not finish")
                time.sleep(0.2)
            idle = timed_gets(service, job_id, args.requests)

            workers = usable_cores()
            for n in range(workers * 2):
                path = long_file(service.media / f"long-{n}.wav")
                service.client.post("/transcribe", json={"path": str(path)}).raise_for_status()
            while busy_workers(service) < workers:
                time.sleep(0.1)
            busy = timed_gets(service, job_id, args.requests)
            still_busy = busy_workers(service)

            files = [
                shutil.copy(FIXTURE, service.media / f"q-{n:04}.wav") for n in range(args.enqueue)
            ]
            started = time.perf_counter()
            for path in files:
                service.client.post("/transcribe", json={"path": str(path)}).raise_for_status()
            enqueue_s = time.perf_counter() - started
        finally:
            service.close()
    print(f"worker_niceness {niceness}:")
    print(f"  GET /jobs/{{id}}, workers idle ({args.requests} requests): {summary(idle)}")
    print(f"  GET /jobs/{{id}}, all {workers} workers busy: {summary(busy)} "
          f"({still_busy} still busy at the end)")  # fmt: skip
    ratio = percentile(busy, 0.99) / percentile(idle, 0.99)
    print(f"  p99 busy / idle: {ratio:.2f}")
    print(f"  POST /transcribe by path, {args.enqueue} files, one client, workers busy: "
          f"{args.enqueue / enqueue_s:.0f} jobs/s ({1000 * enqueue_s / args.enqueue:.1f} ms each)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--enqueue", type=int, default=200)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument(
        "--niceness",
        type=int,
        nargs="+",
        default=[10],
        help="worker_niceness values, each measured in turn (0: workers at the API's priority)",
    )
    args = parser.parse_args()
    print(f"command: {' '.join(sys.argv)}; {usable_cores()} cores")
    for niceness in args.niceness:
        measure(args, niceness)
    return 0


if __name__ == "__main__":
    sys.exit(main())
