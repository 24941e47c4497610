"""Peak memory of a worker against the length of its audio: 1 min, 10 min and 2 h of speech.

    .venv/bin/python bench/memory.py [--minutes 1,10,120] [--vad] [--database-url URL]

For each length, a real `serve` with one worker (a new process each time, so that each peak is
its own) transcribes one file of that length, submitted by path. Once the job is done the
worker's peak resident memory is read: VmHWM from /proc/PID/status, the kernel's high-water mark
over the process's whole life (model loading included), which no sampling can miss. The audio is
a paragraph spoken by espeak-ng (about 44 s) said over and over by sox up to the length: speech
throughout, the heaviest case for the model. Prints a table with each peak as a ratio to the
first length's (the 1-min baseline of the same run). Target: 2 h <= 1.5 x 1 min.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from throughput import Service, usable_cores  # bench/ is sys.path[0] when this script runs

PARAGRAPH = (
    "Welcome to the museum, where every painting tells a story. Please send the quarterly "
    "report to the finance team by Friday. My favorite color is green and my favorite animal is "
    "the elephant. The weather today is cloudy with a chance of rain in the afternoon. We will "
    "meet again next week to discuss the budget for the new library. The train to the city "
    "leaves at half past eight every morning. Children were playing in the park while their "
    "parents talked on the benches. The committee decided to postpone the vote until all "
    "members could attend. A good cup of coffee is the best way to start a long day of work. "
    "Remember to water the plants and feed the cat before you leave for the holidays."
)
UNIT_S = 60
JOB_TIMEOUT_S = 4 * 3600.0
POLL_S = 1.0  # the figures come from the job's row and the kernel: no need to look eagerly


def speech(folder: Path, minutes: int) -> Path:
    """A 16 kHz mono WAV of `minutes` minutes of speech (the paragraph, again and again)."""
    said, unit, path = folder / "said.wav", folder / "unit.wav", folder / f"speech-{minutes}min.wav"
    if not unit.exists():
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(said), PARAGRAPH],
                       check=True)  # fmt: skip
        subprocess.run(["sox", "-R", str(said), "-r", "16000", "-c", "1", str(unit),
                        "repeat", "1", "trim", "0", str(UNIT_S)], check=True)  # fmt: skip
    subprocess.run(["sox", str(unit), str(path), "repeat", str(minutes - 1)], check=True)
    return path


def the_worker(service: Service) -> psutil.Process:
    workers = [
        child
        for child in psutil.Process(service.process.pid).children()
        if any("spawn_main" in part for part in child.cmdline())
    ]
    if len(workers) != 1:
        raise RuntimeError(f"expected one worker process, found {len(workers)}")
    return workers[0]


def status_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def measure(
    audio: Path, workdir: Path, database_url: str | None, vad: bool
) -> tuple[float, float, float, float]:
    """(peak MiB, peak MiB when the model was ready, transcription s, audio s) for one file in a
    service of its own."""
    service = Service(workdir, database_url, settings={"workers": "1", "formats": "txt"})
    try:
        deadline = time.monotonic() + 120
        while service.client.get("/ready").status_code != 200:  # the model is loaded
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not become ready")
            time.sleep(POLL_S)
        worker = the_worker(service)
        loaded = status_mib(worker.pid, "VmHWM")
        target = service.media / audio.name
        audio.rename(target)
        body = {"path": str(target), "vad_filter": vad, "formats": ["txt"]}
        response = service.client.post("/transcribe", json=body)
        response.raise_for_status()
        job_id = response.json()["id"]
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while (job := service.client.get(f"/jobs/{job_id}").json())["status"] not in (
            "done",
            "failed",
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{audio.name} did not finish in {JOB_TIMEOUT_S:.0f} s")
            time.sleep(POLL_S)
        if job["status"] != "done":
            raise RuntimeError(f"{audio.name} failed: {job['error']}")
        peak = status_mib(worker.pid, "VmHWM")  # the worker is idle and alive: final
        record = service.store.get(job_id)
        assert record.started_at is not None and record.finished_at is not None
        took = (record.finished_at - record.started_at).total_seconds()
        target.unlink()
        return peak, loaded, took, float(job["duration"])
    finally:
        service.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", default="1,10,120", help="lengths; the first is the baseline")
    parser.add_argument("--vad", action="store_true", help="jobs with vad_filter on")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file each")
    args = parser.parse_args()
    lengths = [int(m) for m in args.minutes.split(",")]
    print(f"command: {' '.join(sys.argv)}; {usable_cores()} cores, 1 worker x 1 thread")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        audio_dir = Path(folder) / "audio"
        audio_dir.mkdir()
        for minutes in lengths:
            workdir = Path(folder) / f"run-{minutes}"
            workdir.mkdir()
            peak, loaded, took, duration = measure(
                speech(audio_dir, minutes), workdir, args.database_url, args.vad
            )
            rows.append((minutes, duration, loaded, peak, took))
            print(
                f"  {minutes} min: peak {peak:.0f} MiB (model loaded: {loaded:.0f}), {took:.1f} s"
            )
    base = rows[0][3]
    print()
    print(
        "| audio | peak MiB (VmHWM) | vs first | model loaded, MiB | transcription s | x real time |"
    )
    print("|---|---|---|---|---|---|")
    for minutes, duration, loaded, peak, took in rows:
        print(
            f"| {minutes} min ({duration:.0f} s) | {peak:.0f} | {peak / base:.2f} | {loaded:.0f} "
            f"| {took:.1f} | {duration / took:.1f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
