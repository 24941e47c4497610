"""A pool of spawned worker processes, the same for the CLI and the service."""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from multiprocessing.context import SpawnProcess

from worker.process import WorkerConfig, worker_main

STOP_GRACE_S = 30.0
TERMINATE_WAIT_S = 5.0

log = logging.getLogger(__name__)


class WorkerPool:
    """Starts N worker processes and stops them: finish the job in hand, then terminate stragglers."""

    def __init__(self, config: WorkerConfig, size: int) -> None:
        self.config = config
        self.size = size
        self._context = multiprocessing.get_context("spawn")  # no inherited threads or connections
        self._stop = self._context.Event()
        self._processes: list[SpawnProcess] = []

    def start(self) -> None:
        for index in range(self.size):
            process = self._context.Process(
                target=worker_main,
                args=(self.config, self._stop, os.getpid()),
                name=f"worker-{index + 1}",
            )
            process.start()
            self._processes.append(process)
        log.info("started %s worker process(es), %s thread(s) each", self.size, self.config.threads)

    def alive(self) -> int:
        return sum(1 for process in self._processes if process.is_alive())

    def exit_codes(self) -> list[int | None]:
        return [process.exitcode for process in self._processes]

    def kill(self) -> None:
        for process in self._processes:
            if process.is_alive():
                process.kill()

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop claiming; wait up to grace_s for jobs in hand, then terminate the rest."""
        self._stop.set()
        deadline = time.monotonic() + grace_s
        for process in self._processes:
            process.join(max(deadline - time.monotonic(), 0.0))
        for process in self._processes:
            if process.is_alive():
                log.warning("%s did not stop within %.0f s; terminating it", process.name, grace_s)
                process.terminate()
                process.join(TERMINATE_WAIT_S)
        self._processes.clear()
