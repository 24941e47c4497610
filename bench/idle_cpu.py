"""What an idle service costs: CPU time of `serve` and its workers with no work, per second.

    .venv/bin/python bench/idle_cpu.py [--seconds 60] [--database-url URL]

A real `serve` (default layout, the bundled model, one watched inbox left empty) is started; once
it is ready and its workers have loaded their model, the CPU time (user + system) of its whole
process tree is read, again after `--seconds`, and the difference is divided by the wall time:
the fraction of one core the service uses doing nothing, the main process (API, watcher,
scheduler, change feed) and the workers apart. Target (issue 21): under 0.005 of a core.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import psutil
from throughput import Service, usable_cores

WARM_UP_S = 35.0


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def idle_workers(service: Service) -> int:
    for line in service.client.get("/metrics").text.splitlines():
        if line.startswith('whisper_transcriber_worker_state{state="idle"}'):
            return int(float(line.split()[-1]))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    print(f"command: {' '.join(sys.argv)}; {usable_cores()} cores")
    with tempfile.TemporaryDirectory() as workdir:
        service = Service(Path(workdir), args.database_url)
        try:
            main_process = psutil.Process(service.process.pid)
            deadline = time.monotonic() + 120
            while idle_workers(service) < usable_cores():  # every model loaded
                if time.monotonic() > deadline:
                    raise RuntimeError("the workers did not become ready")
                time.sleep(0.5)
            # The start's own work (migrations, first scans) out of the way, and each periodic
            # job run once (leases every 30 s): a first run compiles its statements, once.
            time.sleep(WARM_UP_S)
            children = main_process.children(recursive=True)
            started = time.monotonic()
            main_before = cpu_seconds(main_process)
            workers_before = sum(cpu_seconds(child) for child in children)
            time.sleep(args.seconds)
            wall = time.monotonic() - started
            main_used = cpu_seconds(main_process) - main_before
            workers_used = sum(cpu_seconds(child) for child in children) - workers_before
        finally:
            service.close()
    print(f"idle for {wall:.0f} s, {len(children)} child processes:")
    print(
        f"  main process (API, watcher, scheduler, change feed): {main_used / wall:.4f} of a core"
    )
    print(f"  workers and helpers: {workers_used / wall:.4f} of a core")
    print(f"  all: {(main_used + workers_used) / wall:.4f} of a core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
