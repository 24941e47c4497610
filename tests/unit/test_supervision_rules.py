"""The supervision's decisions, as plain values: when a worker steps down for a fresh process
(tests/faults/test_recycling.py runs it), and when an attempt counts as lost to a cancel or a
later attempt (tests/faults/test_cancel.py)."""

from __future__ import annotations

import dataclasses

from tests.helpers.media import FIXTURES
from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.values import JobOptions, JobRecord
from whisper_transcriber.worker.lost_attempts import ABANDON_GRACE_S, LostAttempt, track, why_lost
from whisper_transcriber.worker.process import Recycling


def test_recycling_reasons() -> None:
    rules = Recycling(max_jobs=3, max_memory_bytes=100 * 2**20)
    assert rules.reason(2, 50 * 2**20) is None
    assert rules.reason(3, 50 * 2**20) == "3 jobs done"
    assert rules.reason(1, 200 * 2**20) == "memory 200 MiB is above 100 MiB"
    assert Recycling().reason(10**6, 10**12) is None  # unset: never


def test_an_attempt_is_lost_to_a_cancel_or_a_later_attempt_only(sqlite_url: str) -> None:
    store = JobStore(make_engine(sqlite_url))
    store.enqueue(FIXTURES / "speech_a.wav", JobOptions(), "api")
    claimed = store.claim("here:1")
    store.engine.dispose()
    assert claimed is not None and claimed.attempts == 1
    job: JobRecord = claimed

    def as_now(status: JobStatus, attempts: int = 1) -> JobRecord:
        return dataclasses.replace(job, status=status, attempts=attempts)

    assert why_lost(job, 1) is None
    for own_outcome in (JobStatus.DONE, JobStatus.FAILED, JobStatus.QUEUED):
        assert why_lost(as_now(own_outcome), 1) is None
    assert why_lost(as_now(JobStatus.CANCELLED), 1) == ("was cancelled", True)
    for status in (JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.DONE):
        assert why_lost(as_now(status, 2), 1) == ("was taken over by attempt 2", False)
    assert why_lost(None, 1) == ("no longer exists", True)

    first = track(None, job.id, 1, as_now(JobStatus.CANCELLED), now=10.0)
    assert first == LostAttempt(job.id, 1, "was cancelled", True, 10.0)
    assert first.deadline == 10.0 + ABANDON_GRACE_S
    # Retried and claimed again since: the reason changes, the first sighting stays.
    again = track(first, job.id, 1, as_now(JobStatus.RUNNING, 2), now=11.0)
    assert again == LostAttempt(job.id, 1, "was taken over by attempt 2", False, 10.0)
    # The worker went on to another job: a sighting of its own.
    assert track(first, job.id + 1, 1, None, now=12.0) == LostAttempt(
        job.id + 1, 1, "no longer exists", True, 12.0
    )
    assert track(first, job.id, 1, job, now=13.0) is None
