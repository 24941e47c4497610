"""The heartbeat's write rate and lease-loss signal (unit: a recording stand-in for the store)."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta
from typing import cast

from tests.helpers.waiting import wait_until
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.worker.heartbeat import MIN_WRITE_INTERVAL_S, Heartbeat


class RecordingStore:
    lease = timedelta(seconds=60)

    def __init__(self, current: bool = True) -> None:
        self.current = current
        self.writes: list[tuple[float, float | None]] = []

        self.reads = 0

    def heartbeat(self, job_id: int, attempt: int, progress: float | None = None) -> bool:
        self.writes.append((time.monotonic(), progress))
        return self.current

    def is_current(self, job_id: int, attempt: int) -> bool:
        self.reads += 1
        return self.current


def test_progress_is_written_at_most_once_per_interval() -> None:
    store = RecordingStore()
    updates = 0
    with Heartbeat(cast(JobStore, store), job_id=1, attempt=1) as heartbeat:
        deadline = time.monotonic() + 3 * MIN_WRITE_INTERVAL_S + 0.5
        while time.monotonic() < deadline:  # progress as fast as it can come
            updates += 1
            heartbeat.set_progress(updates / 1e9)
    assert updates > 1000
    times = [when for when, _ in store.writes]
    assert 2 <= len(times) <= 4, times
    assert all(b - a >= MIN_WRITE_INTERVAL_S * 0.99 for a, b in itertools.pairwise(times))
    progress = [value for _, value in store.writes]
    assert progress == sorted(progress) and progress[-1] is not None


def test_lost_lease_is_signalled() -> None:
    store = RecordingStore(current=False)
    with Heartbeat(cast(JobStore, store), job_id=1, attempt=1) as heartbeat:
        heartbeat.set_progress(0.5)
        wait_until(heartbeat.lost.is_set, 10, "the heartbeat to notice the lost lease")
    assert len(store.writes) == 1


def test_a_cancel_is_noticed_between_writes() -> None:
    """No progress and a long lease: no write is due, yet the loss is seen within a beat."""
    store = RecordingStore(current=False)
    with Heartbeat(cast(JobStore, store), job_id=1, attempt=1) as heartbeat:
        wait_until(heartbeat.lost.is_set, 10, "the heartbeat to notice the cancel")
    assert store.writes == [] and store.reads == 1
