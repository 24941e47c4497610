"""Inboxes in this process: the service's watcher and intake on real folders, an inbox from its
spec, and what the intake records for a file, claimed as a worker would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.helpers.waiting import wait_until
from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.values import JobQuery, JobRecord
from whisper_transcriber.service.inboxes import confinement, file_filter, inboxes_from_settings
from whisper_transcriber.service.settings import load_settings
from whisper_transcriber.watcher.inbox import InboxWatcher
from whisper_transcriber.watcher.intake import Intake
from whisper_transcriber.watcher.spec import Inbox

SETTLE_S = 0.5
WAIT_S = 60


@contextmanager
def watching(
    database_url: str,
    *inboxes: str | Path,
    settle_s: float = SETTLE_S,
    intake_class: type[Intake] = Intake,
    **settings: Any,
) -> Iterator[tuple[InboxWatcher, JobStore]]:
    """The service's watcher, intake and job store, in this process (no workers)."""
    loaded = load_settings(inboxes=[str(inbox) for inbox in inboxes], settle_s=settle_s, **settings)
    engine = make_engine(database_url)
    store = JobStore(engine)
    watcher = InboxWatcher(
        intake_class(
            store, inboxes_from_settings(loaded), file_filter(loaded), confinement(loaded)
        ),
        settle_s=settle_s,
    )
    watcher.start()
    try:
        yield watcher, store
    finally:
        watcher.stop()
        engine.dispose()


def jobs(store: JobStore) -> list[JobRecord]:
    return store.list_jobs(JobQuery(), 10_000)


def wait_for_jobs(store: JobStore, count: int) -> list[JobRecord]:
    wait_until(lambda: len(jobs(store)) >= count, WAIT_S, f"{count} job(s)")
    return jobs(store)


def inbox_for(spec: str, **settings: object) -> Inbox:
    [inbox] = inboxes_from_settings(load_settings(inboxes=[spec], **settings))
    return inbox


def enqueue_and_claim(store: JobStore, inbox: Inbox, path: Path) -> JobRecord:
    """What the intake records for the file, then claimed as a worker would."""
    plan = inbox.plan(path)
    job, _ = store.enqueue(
        path,
        plan.options,
        inbox.origin,
        move_on_done=plan.move_on_done,
        move_on_failure=plan.move_on_failure,
    )
    claimed = store.claim("test-worker")
    assert claimed is not None and claimed.id == job.id
    return claimed
