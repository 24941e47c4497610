"""Throughput: the running service against faster-whisper alone, on the same batch.

(a) faster-whisper directly, in the better of its two layouts for this machine (1 process x all
    threads, or one process per core x 1 thread), models loaded and warmed up (bench/cpu_layout.py
    does the timing);
(b) `whisper-transcriber serve`, each file submitted with POST /transcribe by path, timed from the
    first request to the last transcript written (the jobs' finished_at), after a warm-up job.

Both rates are audio seconds per wall second; the ratio (b)/(a) is the cost of the service on top
of the model (target: >= 1.0). The service computes word times by default (its subtitles are cut on
them: worker/subtitles.py), faster-whisper does not: (a) is run both ways, so that the ratio is
also given for the same work. Run from the repository root:

    .venv/bin/python bench/throughput.py [--copies 24] [--repeat 3] [--database-url URL]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cpu_layout  # bench/ is sys.path[0] when this script runs
import httpx

from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.db.job_store import JobStore

REPO_ROOT = Path(__file__).resolve().parent.parent
COMMAND = str(Path(sys.executable).parent / "whisper-transcriber")
START_TIMEOUT_S = 120.0
BATCH_TIMEOUT_S = 1800.0
POLL_S = 2.0  # the end time comes from the jobs' rows; waiting need not be eager


def usable_cores() -> int:
    return len(os.sched_getaffinity(0))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def direct_rate(
    audio: Path, copies: int, duration_s: float, layouts: list[cpu_layout.Layout], words: bool
) -> tuple[cpu_layout.Layout, float]:
    """One batch per layout; the best layout and its rate. words: with word timestamps, as the
    service computes them for its reading subtitles (the default), else faster-whisper's default."""
    context = multiprocessing.get_context("spawn")
    base = cpu_layout.WorkerConfig(
        model_path=cpu_layout.default_model_path(),
        compute_type="int8",
        threads=1,
        audio_path=str(audio),
        beam_size=cpu_layout.BEAM_SIZE,
        word_timestamps=words,
    )
    best: tuple[cpu_layout.Layout, float] = (layouts[0], 0.0)
    for layout in layouts:
        result, _digest = cpu_layout.run_layout(context, layout, base, copies, None)
        rate = copies * duration_s / result.wall_s
        print(
            f"  direct {layout.label}{' with word times' if words else ''}: {rate:.1f}x real "
            f"time ({result.wall_s:.2f} s, {statistics.mean(result.per_item_s):.3f} s per file)"
        )
        if rate > best[1]:
            best = (layout, rate)
    return best


class Service:
    """A real `serve` on a temporary folder: SQLite unless a database URL is given."""

    def __init__(
        self,
        workdir: Path,
        database_url: str | None,
        settings: dict[str, str] | None = None,
        inbox_options: str = "",
        log_level: str = "WARNING",
    ) -> None:
        self.inbox = workdir / "inbox"  # watched, and left empty: files come by path
        self.inbox.mkdir()
        self.media = workdir / "media"
        self.media.mkdir()
        self.database_url = database_url or f"sqlite:///{workdir / 'jobs.db'}"
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("WHISPER_TRANSCRIBER_")}
        env["WHISPER_TRANSCRIBER_ALLOWED_ROOTS"] = str(self.media)
        for name, value in (settings or {}).items():
            env[f"WHISPER_TRANSCRIBER_{name.upper()}"] = value
        self.log = (workdir / "service.log").open("w")
        self.process = subprocess.Popen(
            [COMMAND, "serve", "--port", str(self.port),
             "--inbox", f"{self.inbox}?{inbox_options}" if inbox_options else str(self.inbox),
             "--database-url", self.database_url, "--log-level", log_level],
            cwd=workdir, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        self.store = JobStore(make_engine(self.database_url))
        self._wait(lambda: self._healthy(), START_TIMEOUT_S, "the service to start")

    def _healthy(self) -> bool:
        try:
            return self.client.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    @staticmethod
    def _wait(condition: object, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(POLL_S)

    def run_batch(
        self,
        files: list[Path],
        models: list[str] | None = None,
        options: dict[str, object] | None = None,
    ) -> float:
        """Seconds from the first request to the last transcript written; `models`: the model
        each file's job names (default: none); `options`: more job options for every file."""
        started = time.time()
        ids = []
        for n, path in enumerate(files):
            body = {"path": str(path), **(options or {})}
            body |= {"model": models[n]} if models else {}
            response = self.client.post("/transcribe", json=body)
            response.raise_for_status()
            ids.append(response.json()["id"])

        def all_final() -> bool:
            return all(job.status.is_final for job in self.store.get_many(ids))

        self._wait(all_final, BATCH_TIMEOUT_S, "the batch to finish")
        jobs = self.store.get_many(ids)
        failed = [job for job in jobs if job.status.value != "done"]
        if failed:
            raise RuntimeError(f"{len(failed)} job(s) failed: {failed[0].error}")
        finished = max(job.finished_at for job in jobs if job.finished_at is not None)
        wall = finished.timestamp() - started
        busy = [
            (job.finished_at - job.started_at).total_seconds()
            for job in jobs
            if job.finished_at and job.started_at
        ]
        first_claim = min(job.started_at for job in jobs if job.started_at).timestamp() - started
        print(
            f"  service: {statistics.mean(busy):.3f} s per job from claim to done, workers busy "
            f"{sum(busy) / (wall * usable_cores()):.1%} of the wall time, first claim after "
            f"{first_claim * 1000:.0f} ms"
        )
        return wall

    def close(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)
        self.client.close()
        self.store.engine.dispose()
        self.log.close()


def copies_of(audio: Path, folder: Path, prefix: str, count: int) -> list[Path]:
    return [
        Path(shutil.copy(audio, folder / f"{prefix}-{n:03}{audio.suffix}")) for n in range(count)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio", type=Path, default=cpu_layout.DEFAULT_AUDIO)
    parser.add_argument("--copies", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    duration_s = cpu_layout.audio_duration_s(str(args.audio))
    print(f"batch: {args.copies} x {args.audio.name} ({duration_s:.2f} s), {usable_cores()} cores")
    print(f"command: {' '.join(sys.argv)}")

    plain: list[float] = []
    words: list[float] = []
    service_rates: list[float] = []
    cores = usable_cores()
    # The first round tries both layouts; later rounds use the better one.
    layouts = [cpu_layout.Layout(1, cores), cpu_layout.Layout(cores, 1)]
    with tempfile.TemporaryDirectory() as workdir:
        service = Service(Path(workdir), args.database_url)
        try:
            warmup = copies_of(args.audio, service.media, "warmup", 2)
            service.run_batch(warmup)
            for repeat in range(args.repeat):
                layout, rate = direct_rate(args.audio, args.copies, duration_s, layouts, False)
                layouts = [layout]
                plain.append(rate)
                words.append(direct_rate(args.audio, args.copies, duration_s, layouts, True)[1])
                files = copies_of(args.audio, service.media, f"batch{repeat}", args.copies)
                wall = service.run_batch(files)
                service_rates.append(args.copies * duration_s / wall)
                print(
                    f"repeat {repeat + 1}: direct ({layout.label}) {rate:.2f}x, with word times "
                    f"{words[-1]:.2f}x; service {service_rates[-1]:.2f}x ({wall:.2f} s); ratio "
                    f"{service_rates[-1] / rate:.3f}, with word times "
                    f"{service_rates[-1] / words[-1]:.3f}"
                )
        finally:
            service.close()

    # Each round's ratio is taken within the round: the machine's speed drifts between rounds.
    for label, direct in (("direct", plain), ("direct with word times", words)):
        ratios = [service / base for service, base in zip(service_rates, direct, strict=True)]
        print(
            f"{label}: median {statistics.median(direct):.2f}x real time; service "
            f"{statistics.median(service_rates):.2f}x; ratio per round: "
            f"{', '.join(f'{r:.3f}' for r in ratios)} (median {statistics.median(ratios):.3f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
