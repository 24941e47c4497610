"""How soon a finished job reaches its watchers: GET /events and a synchronous POST /asr.

    .venv/bin/python bench/event_latency.py [--jobs 20] [--database-url URL]

A real `serve` (the bundled model, its 2 workers, the fallback poll of its workers as shipped)
transcribes `speech_a.wav` one job at a time, with a pause between jobs so that the service is
idle again (the change feed back to its slow safety poll):

- events: a job submitted with POST /transcribe; latency = the moment its `done` event is read
  from a /events stream held open by this script, minus the job's `finished_at`;
- sync: the file sent to POST /asr, which answers when the job is done; latency = the moment
  the answer is read, minus the job's `finished_at`.

`finished_at` is stamped by the worker just before it commits (one machine, one clock), so the
latency holds the commit, the change feed's wake-up and read, and the HTTP response. Target
(issue 21, point 4): within 100 ms on SQLite and PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import text
from throughput import Service

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "speech_a.wav"
IDLE_S = 6.0  # longer than the feed's quiet poll: each job starts from an idle service
WAIT_S = 120.0


class DoneEvents:
    """A thread that reads /events and notes when each job's `done` event arrived."""

    def __init__(self, base_url: str) -> None:
        self.arrived: dict[int, float] = {}
        self.subscribed = threading.Event()
        self._lock = threading.Lock()
        self._client = httpx.Client(base_url=base_url, timeout=None)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        kind = None
        with self._client.stream("GET", "/events") as response:
            for line in response.iter_lines():
                if line.startswith(":"):
                    self.subscribed.set()
                elif line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: ") and kind == "done":
                    job_id = json.loads(line.removeprefix("data: "))["id"]
                    with self._lock:
                        self.arrived[job_id] = time.time()

    def wait_for(self, job_id: int) -> float:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            with self._lock:
                if job_id in self.arrived:
                    return self.arrived[job_id]
            time.sleep(0.005)
        raise RuntimeError(f"no done event for job {job_id}")


def finished_at(service: Service, job_id: int) -> float:
    job = service.store.get(job_id)
    if job.finished_at is None or job.status.value != "done":
        raise RuntimeError(f"job {job_id}: {job.status.value} {job.error or ''}")
    return job.finished_at.timestamp()


def newest_job(service: Service) -> int:
    with service.store.engine.connect() as conn:
        return int(conn.scalar(text("SELECT coalesce(max(id), 0) FROM jobs")))


def summary(name: str, latencies_ms: list[float]) -> None:
    ordered = sorted(latencies_ms)
    print(
        f"  {name}: median {statistics.median(ordered):.1f} ms, "
        f"p90 {ordered[round(0.9 * (len(ordered) - 1))]:.1f} ms, max {ordered[-1]:.1f} ms "
        f"({len(ordered)} jobs)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    print(f"command: {' '.join(sys.argv)}")
    with tempfile.TemporaryDirectory() as workdir:
        service = Service(Path(workdir), args.database_url)
        try:
            events = DoneEvents(str(service.client.base_url))
            if not events.subscribed.wait(30):
                raise RuntimeError("/events did not answer")
            by_events: list[float] = []
            by_sync: list[float] = []
            for n in range(args.jobs):
                path = service.media / f"events-{n:03}.wav"
                path.write_bytes(FIXTURE.read_bytes())
                time.sleep(IDLE_S)
                response = service.client.post("/transcribe", json={"path": str(path)})
                response.raise_for_status()
                job_id = response.json()["id"]
                arrived = events.wait_for(job_id)
                by_events.append((arrived - finished_at(service, job_id)) * 1000)

                time.sleep(IDLE_S)
                newest_before = newest_job(service)
                answer = service.client.post(
                    "/asr",
                    params={"output": "txt"},
                    files={"audio_file": (f"sync-{n:03}.wav", FIXTURE.read_bytes())},
                    timeout=WAIT_S,
                )
                answered = time.time()
                answer.raise_for_status()
                sync_job = newest_job(service)
                if sync_job <= newest_before:
                    raise RuntimeError("no job was made for POST /asr")
                by_sync.append((answered - finished_at(service, sync_job)) * 1000)
            summary("events", by_events)
            summary("sync (POST /asr)", by_sync)
        finally:
            service.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
