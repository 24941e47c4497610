"""Giving jobs back: those whose holders the worker registry knows are gone, and one job a
worker let go of, its half-written files removed."""

from __future__ import annotations

import logging
from pathlib import Path

from whisper_transcriber.db.errors import LeaseLost
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.values import JobRecord
from whisper_transcriber.db.worker_registry import WorkerRegistry
from whisper_transcriber.worker.staging import remove_stale_temporaries

log = logging.getLogger(__name__)


def hand_back_orphans(store: JobStore, registry: WorkerRegistry) -> list[int]:
    """Jobs left running by workers the registry knows are gone (a pool killed with -9 on this
    machine, a worker that stopped): back to the queue now, instead of when their leases expire.
    A holder on another machine, whatever its hostname, keeps its job until its lease says."""
    running = [job for job in store.running() if job.worker_id]
    gone = registry.gone({job.worker_id for job in running if job.worker_id})
    return [job.id for job in running if job.worker_id in gone and release(store, job)]


def release(store: JobStore, job: JobRecord) -> bool:
    """Back to the queue without using up an attempt, and its half-written files gone."""
    try:
        store.release(job.id, job.attempts)
    except LeaseLost:
        return False
    remove_temporaries(job)
    return True


def remove_temporaries(job: JobRecord) -> None:
    output_dir = Path(job.options.output_dir) if job.options.output_dir else None
    for path in remove_stale_temporaries(
        Path(job.source_path), job.options.formats, output_dir, job.options.media_library
    ):
        log.info("job %s: removed the temporary %s", job.id, path)
