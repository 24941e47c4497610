"""Cancel under load: from a cancel request to the worker's slot being free for the next job.

A real `serve` with 2 workers, each transcribing a long file (10 min of speech); a short job waits
in the queue behind them. Once a long job is under way (progress > 0) it is cancelled with
DELETE /jobs/{id}. Measured from the request, per run:

- off the job: when its worker stopped working on it: its process gone (the supervisor killed it,
  worker/lost_attempts.py), or, where it stopped by itself at a segment boundary, the short job
  claimed by that same process;
- next claimed: the short job's started_at (by the stopped worker, or by the killed one's
  replacement once its model is loaded).

Each run then lets the short job finish and starts a fresh long job, so that both workers are
busy again. Baselines from the same service: enqueue to claim with an idle worker (before the
load), and for killed workers the replacement's start (from the old process gone to the next
claim: spawn and model load). Run from the repository root:

    .venv/bin/python bench/cancel.py [--runs 8] [--database-url URL]

For the code before a change, run the same script with that code first on the path, e.g.
`git archive COMMIT | tar -x -C /tmp/before` and `PYTHONPATH=/tmp/before .venv/bin/python
bench/cancel.py` (the service it starts inherits PYTHONPATH).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import wave
from datetime import datetime
from pathlib import Path

from throughput import Service, usable_cores  # bench/ is sys.path[0] when this script runs

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
LONG_REPEATS = 150  # speech_a.wav (4.2 s) said 150 times: 10.5 min
POLL_S = 0.01  # a worker's exit is seen from /proc this often
TIMEOUT_S = 600.0


def long_speech(path: Path) -> Path:
    with wave.open(str(FIXTURES / "speech_a.wav"), "rb") as source:
        params, frames = source.getparams(), source.readframes(source.getnframes())
    with wave.open(str(path), "wb") as out:
        out.setparams(params)
        for _ in range(LONG_REPEATS):
            out.writeframes(frames)
    return path


def wait_for(condition: object, what: str, timeout: float = TIMEOUT_S) -> object:
    deadline = time.monotonic() + timeout
    while not (result := condition()):  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(POLL_S)
    return result


def pid_of(worker_id: str | None) -> int | None:
    return int(worker_id.rsplit(":", 1)[1]) if worker_id else None


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Bench:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.made = 0

    def submit(self, source: Path) -> int:
        """A fresh copy of source, submitted by path: a job of its own."""
        self.made += 1
        copy = self.service.media / f"{self.made:03}-{source.name}"
        copy.write_bytes(source.read_bytes())
        response = self.service.client.post("/transcribe", json={"path": str(copy)})
        response.raise_for_status()
        job_id: int = response.json()["id"]
        return job_id

    def status(self, job_id: int) -> str:
        return self.service.store.get(job_id).status.value

    def idle_claim_s(self, short: Path) -> float:
        job_id = self.submit(short)
        wait_for(lambda: self.service.store.get(job_id).status.is_final, "the short job")
        job = self.service.store.get(job_id)
        assert job.started_at is not None
        return (job.started_at - job.created_at).total_seconds()

    def run(self, long: Path, short: Path, running: list[int]) -> tuple[str, float, float]:
        """One cancel: (how the worker came off the job, seconds to that, seconds to the next
        claim). `running` holds the long jobs under way; updated in place."""
        store = self.service.store
        running[:] = [job_id for job_id in running if self.status(job_id) in ("queued", "running")]
        while len(running) < 2:
            running.append(self.submit(long))
        for job_id in running:
            wait_for(
                lambda job_id=job_id: store.get(job_id).progress > 0, f"long job {job_id} to run"
            )
        waiting = self.submit(short)
        victim = running.pop(0)
        pid = pid_of(store.get(victim).worker_id)
        assert pid is not None and self.status(waiting) == "queued"
        started = time.time()
        self.service.client.delete(f"/jobs/{victim}").raise_for_status()
        gone_at = None
        while (claimed := store.get(waiting)).started_at is None or gone_at is None:
            if gone_at is None and not alive(pid):
                gone_at = time.time()
            if claimed.started_at is not None and pid_of(claimed.worker_id) == pid:
                break  # the same process took it: it stopped by itself
            if time.time() - started > TIMEOUT_S:
                raise RuntimeError("timed out waiting for the worker to come off the job")
            time.sleep(POLL_S)
        assert claimed.started_at is not None
        next_claim_s = claimed.started_at.timestamp() - started
        wait_for(lambda: store.get(waiting).status.is_final, "the short job to finish")
        if gone_at is None:
            return "stopped itself", next_claim_s, next_claim_s
        return "killed", gone_at - started, next_claim_s


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} s, max {max(values):.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    print(f"command: {' '.join(sys.argv)}; {usable_cores()} cores; started {datetime.now():%c}")
    with tempfile.TemporaryDirectory() as workdir:
        folder = Path(workdir)
        long = long_speech(folder / "long.wav")
        short = FIXTURES / "speech_b.flac"
        settings = {
            "workers": "2",
            "threads_per_worker": "1",
            "formats": "txt",
            "poll_interval_s": "3600",  # claims come from wake-ups only
            "shutdown_grace_s": "0",
        }
        service = Service(folder, args.database_url, settings)
        bench = Bench(service)
        try:
            wait_for(lambda: service.client.get("/ready").status_code == 200, "the workers")
            idle = [bench.idle_claim_s(short) * 1000 for _ in range(5)]
            print(
                f"baseline, enqueue to claim with a worker idle: median "
                f"{statistics.median(idle):.1f} ms, max {max(idle):.1f} ms"
            )
            running: list[int] = []
            rows = []
            for number in range(1, args.runs + 1):
                how, off_s, claim_s = bench.run(long, short, running)
                rows.append((how, off_s, claim_s))
                extra = f", replacement start {claim_s - off_s:.2f} s" if how == "killed" else ""
                print(
                    f"run {number}: {how}; off the job after {off_s:.2f} s, next job claimed "
                    f"after {claim_s:.2f} s{extra}"
                )
        finally:
            service.close()
    for how in ("killed", "stopped itself"):
        picked = [row for row in rows if row[0] == how]
        if picked:
            print(
                f"{how} ({len(picked)} of {len(rows)}): off the job "
                f"{summary([row[1] for row in picked])}; next job claimed "
                f"{summary([row[2] for row in picked])}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
