"""A worker process's entry in the worker registry: registered as it starts, a heartbeat thread
while it lives (what it does: starting, idle, busy with which job), stopped when it ends."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from whisper_transcriber.db.errors import DatabaseRefused, QueueError
from whisper_transcriber.db.worker_registry import (
    WORKER_HEARTBEAT_S,
    WorkerRegistry,
    WorkerRole,
    WorkerState,
)

# The longest close() waits for a beat in flight (a database that hangs): the process ends anyway.
CLOSE_WAIT_S = 5.0

log = logging.getLogger(__name__)


class Registration:
    """Beats from its own thread, so that a long job does not make its worker look stale (a
    worker frozen in its job is the supervisor's timeout's business, not the registry's)."""

    def __init__(
        self,
        registry: WorkerRegistry,
        worker_id: str,
        instance: str,
        role: WorkerRole,
        doing: Callable[[], tuple[WorkerState, int | None]],
        interval_s: float = WORKER_HEARTBEAT_S,
        holding: Callable[[], Sequence[str]] | None = None,
    ) -> None:
        """holding: the names of the models the worker has loaded, said with each beat."""
        self.registry = registry
        self.worker_id = worker_id
        self.instance = instance
        self.role = role
        self.doing = doing
        self.interval_s = interval_s
        self.holding = holding
        self.registered = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._complaint: str | None = None

    def start(self) -> None:
        """Registers now when the database answers (else the thread keeps trying), then beats.
        DatabaseRefused when the database refuses the row (no workers table, no right to write
        it): such a worker would never claim, so it must not start."""
        self._beat(refusal_is_fatal=True)
        self._thread.start()

    def close(self) -> None:
        """Stops beating and marks the row stopped (when the database answers)."""
        self._done.set()
        if self._thread.is_alive():
            self._thread.join(CLOSE_WAIT_S)
        if self.registered.is_set() and not self._thread.is_alive():
            try:
                self.registry.stopped(self.worker_id)
            except QueueError as exc:
                log.warning("worker %s: could not mark itself stopped: %s", self.worker_id, exc)

    def _run(self) -> None:
        while not self._done.wait(self.interval_s):
            try:
                self._beat()
            except Exception as exc:  # a bug must not end the heartbeat: the next beat tries again
                self._complain(f"{type(exc).__name__}: {exc}", exc)

    def _beat(self, *, refusal_is_fatal: bool = False) -> None:
        try:
            if self.registered.is_set():
                state, job_id = self.doing()
                models = self.holding() if self.holding is not None else None
                if self.registry.beat(self.worker_id, state, job_id, models):
                    self._complaint = None
                    return
                self.registered.clear()  # forgotten after a long silence: register again
            self.registry.register(self.worker_id, self.instance, self.role)
            self.registered.set()
            self._complaint = None
        except QueueError as exc:
            if refusal_is_fatal and isinstance(exc, DatabaseRefused):
                raise
            self._complain(str(exc))

    def _complain(self, complaint: str, exc: Exception | None = None) -> None:
        if complaint != self._complaint:  # one line per new reason, not one per beat
            log.warning("worker %s: heartbeat failed: %s", self.worker_id, complaint, exc_info=exc)
        self._complaint = complaint
