"""`transcribe FILE...`: the files go through the same queue and worker processes as the service."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from whisper_transcriber.db.errors import UnstorablePath
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.values import CLI_ORIGIN, JobRecord
from whisper_transcriber.db.worker_registry import WorkerRegistry, WorkerRole
from whisper_transcriber.service.bootstrap import Prepared, prepare
from whisper_transcriber.service.database import job_store, open_database, worker_registry
from whisper_transcriber.service.handover import (
    find_service,
    shows_job,
    wait_for_service,
)
from whisper_transcriber.service.progress import Display, Outcome
from whisper_transcriber.service.settings import Settings
from whisper_transcriber.worker.hand_back import hand_back_orphans
from whisper_transcriber.worker.outputs import render
from whisper_transcriber.worker.pool_failed import PoolFailed

# How often the waiting command looks at its jobs when nothing woke it.
WAIT_POLL_S = 0.5


def submit(
    store: JobStore, settings: Settings, files: Sequence[Path], *, force: bool = False
) -> tuple[list[JobRecord], list[str]]:
    """Queue each file; an unchanged file already done with these options keeps its job (unless
    force), a failed one is tried again. Also the reasons of files that could not be recorded."""
    registry = worker_registry(settings, store)
    hand_back_orphans(store, registry)
    registry.tidy()  # also where no service ever runs
    jobs = []
    refused = []
    for file in files:
        options = settings.job_options()
        try:
            job, _created = store.enqueue(file, options, origin=CLI_ORIGIN, force=force)
        except UnstorablePath as exc:
            refused.append(str(exc))
            continue
        if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
            job = store.retry(job.id)  # asked for by name: worth another go
        jobs.append(job)
    return jobs, refused


def run_until_finished(
    prepared: Prepared,
    jobs: list[JobRecord],
    on_update: Callable[[list[JobRecord]], None] | None = None,
) -> list[JobRecord]:
    """Run a supervised worker pool until every job is final; the final records, in order.
    on_update is given the jobs as they are each time the command looks (their progress)."""
    if all(job.status.is_final for job in jobs):
        return jobs
    pending = sum(1 for job in jobs if not job.status.is_final)
    changed = threading.Event()
    pool = prepared.worker_pool(
        size=min(prepared.layout.workers, pending),
        on_failure=lambda _reason: changed.set(),
        role=WorkerRole.COMMAND,
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
            if on_update is not None:
                on_update(list(current.values()))
            if all(job.status.is_final for job in current.values()):
                return [current[job_id] for job_id in ids]
            if pool.failure is not None:
                raise PoolFailed(pool.failure)
            changed.wait(WAIT_POLL_S)
    finally:
        pool.stop(prepared.settings.shutdown_grace_s)


def transcribe_here(
    settings: Settings,
    files: Sequence[Path],
    shown: Display,
    *,
    force: bool = False,
    hand_over: bool = True,
    print_text: bool = False,
) -> list[Outcome]:
    """`transcribe` without a server: queue the files in the database, then let a service that
    works on the same database run them (service/handover.py), or run a pool of our own. The
    model is resolved (and a size name fetched) only for a pool of our own."""
    db = open_database(settings)
    # A pool of our own for certain: its model is checked before anything is queued.
    prepared = None if hand_over else prepare(settings, db)
    store = job_store(settings, db)
    jobs, refused = submit(store, settings, files, force=force)
    outcomes = [Outcome("", "refused", reason=reason) for reason in refused]
    for outcome in outcomes:
        shown.finished(outcome)
    for job in jobs:
        shown.add(job.id, job.source_path)
    reported: set[int] = set()

    def on_update(current: list[JobRecord]) -> None:
        for job in current:
            if job.id in reported:
                continue
            if job.status.is_final:
                reported.add(job.id)
                shown.finished(_outcome(store, job, print_text=False), job.id)
            else:
                shown.update(job.id, job.status.value, job.progress)

    on_update(jobs)
    finished = None
    if hand_over and not all(job.status.is_final for job in jobs):
        registry = worker_registry(settings, store)
        finished = _handed_over(settings, store, registry, jobs, shown, on_update)
    if finished is None:
        finished = run_until_finished(prepared or prepare(settings, db), jobs, on_update)
    on_update(finished)
    return outcomes + [_outcome(store, job, print_text=print_text) for job in finished]


def _handed_over(
    settings: Settings,
    store: JobStore,
    registry: WorkerRegistry,
    jobs: list[JobRecord],
    shown: Display,
    on_update: Callable[[list[JobRecord]], None],
) -> list[JobRecord] | None:
    """The final records when a service on this database ran them; None: run them here."""
    service = find_service(settings, registry)
    if service is None:
        return None
    with service:
        if not shows_job(service, jobs[0]):
            return None
        for job in jobs:
            refusal = service.source_refusal(job.id)
            if refusal is not None:
                shown.say(
                    f"the service at {service.base_url} works on this database but does not "
                    f"open {job.source_path} ({refusal}): running the jobs here (its workers "
                    "share the queue and may still take some of them)"
                )
                return None
        shown.say(
            f"handing {len(jobs)} job(s) to the service at {service.base_url}, which works on "
            "the same database (--local runs them here)"
        )
        finished = wait_for_service(store, jobs, registry, on_update)
        if finished is None:
            shown.say(f"the service at {service.base_url} went away: running the rest here")
        return finished


def _outcome(store: JobStore, job: JobRecord, *, print_text: bool) -> Outcome:
    if job.status is not JobStatus.DONE:
        return Outcome(job.source_path, job.status.value, reason=job.error)
    text = None
    if print_text:
        transcript = store.transcript(job.id)
        text = render(transcript, "txt") if transcript is not None else None
    return Outcome(job.source_path, "done", outputs=job.outputs, note=job.note, text=text)
