"""`transcribe FILE...`: the files go through the same queue and worker processes as the service."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

from whisper_transcriber.db.errors import UnstorablePath
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.values import JobRecord
from whisper_transcriber.service.bootstrap import Prepared
from whisper_transcriber.worker.supervisor import PoolFailed, hand_back_orphans

# How often the waiting command looks at its jobs when nothing woke it.
WAIT_POLL_S = 0.5


def submit(
    prepared: Prepared, files: Sequence[Path], *, force: bool = False
) -> tuple[list[JobRecord], list[str]]:
    """Queue each file; an unchanged file already done with these options keeps its job (unless
    force), a failed one is tried again. Also the reasons of files that could not be recorded."""
    store = prepared.store
    hand_back_orphans(store)
    jobs = []
    refused = []
    for file in files:
        options = prepared.settings.job_options()
        try:
            job, _created = store.enqueue(file, options, origin="cli", force=force)
        except UnstorablePath as exc:
            refused.append(str(exc))
            continue
        if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
            job = store.retry(job.id)  # asked for by name: worth another go
        jobs.append(job)
    return jobs, refused


def run_until_finished(prepared: Prepared, jobs: list[JobRecord]) -> list[JobRecord]:
    """Run a supervised worker pool until every job is final; the final records, in order."""
    if all(job.status.is_final for job in jobs):
        return jobs
    pending = sum(1 for job in jobs if not job.status.is_final)
    changed = threading.Event()
    pool = prepared.worker_pool(
        size=min(prepared.layout.workers, pending), on_failure=lambda _reason: changed.set()
    )
    pool.start()
    ids = [job.id for job in jobs]
    recover_every_s = prepared.settings.lease_s / 2
    last_recovery = time.monotonic()
    try:
        while True:
            if time.monotonic() - last_recovery >= recover_every_s:
                # Jobs whose worker vanished elsewhere (another machine, an earlier killed run).
                prepared.store.recover_expired()
                last_recovery = time.monotonic()
            current = {job.id: job for job in prepared.store.get_many(ids)}
            if all(job.status.is_final for job in current.values()):
                return [current[job_id] for job_id in ids]
            if pool.failure is not None:
                raise PoolFailed(pool.failure)
            changed.wait(WAIT_POLL_S)
    finally:
        pool.stop(prepared.settings.shutdown_grace_s)
