"""A running job's heartbeat: extends its lease and records progress, at a bounded write rate."""

from __future__ import annotations

import logging
import threading
import time

from whisper_transcriber.db.errors import QueueError
from whisper_transcriber.db.job_store import JobStore

# At most one write per second per job, and at least one per third of a lease.
MIN_WRITE_INTERVAL_S = 1.0
LEASE_FRACTION = 1 / 3

log = logging.getLogger(__name__)


class Heartbeat:
    """A thread beside the transcription; the model releases the GIL, so it keeps beating."""

    def __init__(self, store: JobStore, job_id: int, attempt: int) -> None:
        self.store = store
        self.job_id = job_id
        self.attempt = attempt
        self.interval_s = max(store.lease.total_seconds() * LEASE_FRACTION, MIN_WRITE_INTERVAL_S)
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._progress: float | None = None
        self._written_progress: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def set_progress(self, fraction: float) -> None:
        self._progress = fraction

    def _run(self) -> None:
        last_write = time.monotonic()
        while not self._stop.wait(MIN_WRITE_INTERVAL_S):
            progress = self._progress
            changed = progress is not None and progress != self._written_progress
            write = changed or time.monotonic() - last_write >= self.interval_s
            try:
                if not write:
                    # A read, so that a cancel is noticed within a second even between writes.
                    if not self.store.is_current(self.job_id, self.attempt):
                        self.lost.set()
                        return
                    continue
                current = self.store.heartbeat(self.job_id, self.attempt, progress)
            except QueueError as exc:  # the database is away: keep working, the lease may hold
                log.warning("job %s: heartbeat failed: %s", self.job_id, exc)
                continue
            except Exception:  # never let the beat die silently: the job would run twice
                log.exception("job %s: heartbeat failed", self.job_id)
                continue
            last_write = time.monotonic()
            self._written_progress = progress
            if not current:
                self.lost.set()
                return
