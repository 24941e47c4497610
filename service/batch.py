"""`transcribe FILE...`: the files go through the same queue and worker processes as the service."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from db.models import JobStatus
from db.values import JobRecord
from service.bootstrap import Prepared
from worker.pool import WorkerPool

WAIT_POLL_S = 0.2


def submit(prepared: Prepared, files: Sequence[Path]) -> list[JobRecord]:
    """Queue each file; an unchanged file already done keeps its job, a failed one is tried again."""
    store = prepared.store
    jobs = []
    for file in files:
        job, _created = store.enqueue(file, prepared.settings.job_options(), origin="cli")
        if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
            job = store.retry(job.id)  # asked for by name: worth another go
        jobs.append(job)
    return jobs


def run_until_finished(prepared: Prepared, jobs: list[JobRecord]) -> list[JobRecord]:
    """Run a worker pool until every job is final; returns the final records in order."""
    pending = [job for job in jobs if not job.status.is_final]
    if not pending:
        return jobs
    size = min(prepared.layout.workers, len(pending))
    pool = WorkerPool(prepared.worker_config(), size)
    pool.start()
    try:
        ids = [job.id for job in jobs]
        while True:
            current = prepared.store.get_many(ids)
            if all(job.status.is_final for job in current):
                by_id = {job.id: job for job in current}
                return [by_id[job_id] for job_id in ids]
            if pool.alive() == 0:
                raise RuntimeError(f"every worker process exited (exit codes {pool.exit_codes()})")
            time.sleep(WAIT_POLL_S)
    finally:
        pool.stop()
