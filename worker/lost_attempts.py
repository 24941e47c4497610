"""A busy worker whose attempt lost its job: the supervisor's view, read from the database.

A job is cancelled (through this instance's API or any other's, on PostgreSQL from another
machine) or taken over by a later attempt (its lease expired and another worker claimed it). The
worker's heartbeat notices within a second and its transcription stops at the next segment; a
segment can be long, and a decoder can hang. So the supervisor looks too: once per tick, one query
for the jobs its busy workers hold. A worker still holding a lost attempt ABANDON_GRACE_S after the
supervisor first saw it is killed and replaced. The grace lets a worker that stops by itself at a
segment boundary do so.

Only what another party did counts as lost: the job cancelled, or a later attempt of it. A job
done, failed or queued again at the same attempt is the worker's own outcome (it clears its job a
moment later) or, rarely, a lease recovery not yet claimed again; the heartbeat deals with that
one, and the supervisor once another attempt claims it. Looking from outside the worker, rather
than having the worker report it, also covers a worker whose heartbeat thread cannot run (a
decoder that holds the GIL, a frozen process).
"""

from __future__ import annotations

from dataclasses import dataclass

from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.values import JobRecord

ABANDON_GRACE_S = 1.0


@dataclass(frozen=True)
class LostAttempt:
    """An attempt a worker still holds though its job is no longer its own."""

    job_id: int
    attempt: int
    reason: str  # "was cancelled", "was taken over by attempt 3"
    cancelled: bool  # nobody works on the job: its temporaries may go
    seen_at: float  # monotonic time of the supervisor's first sighting

    @property
    def deadline(self) -> float:
        """When the worker is killed if it still holds the attempt."""
        return self.seen_at + ABANDON_GRACE_S


def why_lost(job: JobRecord | None, attempt: int) -> tuple[str, bool] | None:
    """(reason, cancelled) when `attempt` no longer holds `job` because of another party; None
    while the attempt may still be the job's own (running, or just ended by the worker itself)."""
    if job is None:
        return "no longer exists", True
    if job.attempts > attempt:  # cancelled or not since, another attempt's work must stay
        return f"was taken over by attempt {job.attempts}", False
    if job.status is JobStatus.CANCELLED:
        return "was cancelled", True
    return None


def track(
    previous: LostAttempt | None, job_id: int, attempt: int, job: JobRecord | None, now: float
) -> LostAttempt | None:
    """What a worker holding (job_id, attempt) has lost after a look at the job's row: the same
    LostAttempt while it stays lost (its first sighting counts), None while it holds the job."""
    lost = why_lost(job, attempt)
    if lost is None:
        return None
    reason, cancelled = lost
    if previous is not None and (previous.job_id, previous.attempt) == (job_id, attempt):
        now = previous.seen_at  # cancelled, then retried and taken over: the latest reason
    return LostAttempt(job_id, attempt, reason, cancelled, now)
