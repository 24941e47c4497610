"""A periodic task that can be asked to run now, without losing a request made while it runs.

APScheduler runs one instance of a job at a time and skips a run that comes while one is under
way (with a warning): a request to run now made during a run would then wait for the next turn.
Here such a request makes the run under way go round once more instead."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class RunAgain:
    def __init__(self, task: Callable[..., None]) -> None:
        self.task = task
        self._lock = threading.Lock()
        self._running = False
        self._again = False

    def again_if_running(self) -> bool:
        """True when a run is under way: it runs once more when it ends. False: none is, and the
        caller asks the scheduler for one."""
        with self._lock:
            if self._running:
                self._again = True
            return self._running

    def __call__(self, *args: Any) -> None:
        with self._lock:
            self._running = True
            self._again = False
        while True:
            try:
                self.task(*args)
            except BaseException:
                with self._lock:
                    self._running = False
                raise
            with self._lock:  # deciding to stop and saying so at once: no request falls between
                if not self._again:
                    self._running = False
                    return
                self._again = False
