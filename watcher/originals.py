"""The inbox's rules for its originals: where a file goes once its job has ended, the sweep that
settles what no worker did, and the way back from failed/ when a failed job is retried.

The watcher decides where (watcher/spec.py, JobPlan: done/ and failed/ mirror the inbox tree) and
records it on the job; the worker that ends a job moves its original right away by that record
(worker/originals.py, which also holds the moves that never replace a file). What is left, after
a worker was killed first or the supervisor failed its job, this sweep settles. A retry is
JobStore.retry, whoever asks for it: an original that went to failed/ comes back first."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.values import JobRecord
from whisper_transcriber.worker.originals import move_original, move_without_replacing, same_version

# The sweep leaves a just-ended job to its worker, which moves the original right after.
SWEEP_MIN_AGE_S = 60.0

log = logging.getLogger(__name__)


def move_originals(store: JobStore, min_age_s: float = SWEEP_MIN_AGE_S) -> int:
    """The sweep: ended jobs still waiting for their move (a worker moves its own right away,
    so only jobs that ended min_age_s ago are taken); returns how many were settled."""
    settled = 0
    for job in store.originals_to_move(ended_before=store.clock() - timedelta(seconds=min_age_s)):
        try:
            move_original(store, job)
            settled += 1
        except OSError as exc:
            log.warning("job %s: cannot move %s: %s", job.id, job.source_path, exc)
            store.original_move_failed(job.id)  # to the back of the sweep's line
    return settled


def bring_back_original(job: JobRecord) -> Path | None:
    """Before a failed job is retried (JobStore.retry): its original, if it went to failed/ and
    nothing took its old place, goes back there so that the new attempt finds it. Where it went
    back to; None when there was nothing to bring back."""
    moved = Path(job.original_moved_to) if job.original_moved_to else None
    source = Path(job.source_path)
    if job.status is not JobStatus.FAILED or moved is None or source.exists():
        return None
    if not same_version(moved, job):
        return None
    move_without_replacing(moved, source)
    log.info("job %s: put %s back at %s for a retry", job.id, moved, source)
    return source
