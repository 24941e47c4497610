"""Jobs as tests make and read them: a clock the test moves, jobs by source path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.values import JobQuery, JobRecord


class Clock:
    """The store's notion of now, moved by the test; the database underneath is real."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def jobs_by_path(store: JobStore) -> dict[str, JobRecord]:
    return {job.source_path: job for job in store.list_jobs(JobQuery(), 100)}
