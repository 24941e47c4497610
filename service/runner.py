"""`serve`: the worker pool, the inbox watcher, the scheduler and the HTTP API in one command."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from types import FrameType

import uvicorn
from apscheduler.schedulers.background import BackgroundScheduler

from api.app import create_app
from api.app_context import ApiContext
from db.announcements import JobAnnouncements, listens
from db.job_store import JobStore
from db.values import JobOptions
from service.bootstrap import Prepared
from watcher.inbox import InboxWatcher
from worker.supervisor import PoolFailed, WorkerPool, hand_back_orphans

log = logging.getLogger(__name__)


def enqueue_from_inbox(store: JobStore, options: JobOptions, inbox: Path, path: Path) -> None:
    job, created = store.enqueue(path, options, origin=f"inbox:{inbox.name}")
    if created:
        log.info("job %s: queued %s", job.id, path)


def serve(prepared: Prepared) -> None:
    """Run until SIGINT/SIGTERM; PoolFailed when the workers cannot run at all."""
    settings = prepared.settings
    store = prepared.store
    options = settings.job_options()
    inboxes = [inbox.resolve() for inbox in settings.inboxes]

    handed_back = hand_back_orphans(store)
    if handed_back:
        log.info(
            "handed back %s job(s) left running by a previous run: %s",
            len(handed_back),
            handed_back,
        )

    app = create_app(
        ApiContext(store=store, default_options=options, allowed_roots=settings.api_roots())
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=settings.host, port=settings.port, log_level=settings.log_level.lower()
        )
    )

    def on_pool_failure(_reason: str) -> None:
        server.should_exit = True

    pool = prepared.worker_pool(on_failure=on_pool_failure)
    store.add_wake_listener(pool.wake)
    announcements = (
        JobAnnouncements(settings.database_url, pool.wake)
        if listens(settings.database_url)
        else None
    )
    watcher = InboxWatcher(
        inboxes,
        lambda path: enqueue_from_inbox(store, options, _inbox_of(path, inboxes), path),
        settle_s=settings.settle_s,
    )
    scheduler = BackgroundScheduler()
    scheduler.add_job(
        store.recover_expired, "interval", seconds=max(settings.lease_s / 2, 1.0), id="leases"
    )
    _install_stop_handlers(pool, server)
    pool.start()
    try:
        if announcements is not None:
            announcements.start()
        watcher.start()
        scheduler.start()
        server.run()  # returns on SIGINT or SIGTERM, or when the pool fails
    finally:
        log.info("shutting down")
        if scheduler.running:
            scheduler.shutdown(wait=False)
        watcher.stop()
        if announcements is not None:
            announcements.stop()
        pool.stop(settings.shutdown_grace_s)
        prepared.db.dispose()
    if pool.failure is not None:
        raise PoolFailed(pool.failure)


def _install_stop_handlers(pool: WorkerPool, server: uvicorn.Server) -> None:
    """uvicorn handles the first SIGINT/SIGTERM, then re-raises it to the handler found before it:
    this one, which lets the graceful shutdown run. A second signal ends everything at once."""
    signalled: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if signalled:
            log.warning(
                "second signal: stopping now; running jobs go back to the queue on next start"
            )
            pool.kill()
            os._exit(1)
        signalled.append(signum)
        server.should_exit = True  # a signal before uvicorn took over its handlers

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


def _inbox_of(path: Path, inboxes: list[Path]) -> Path:
    return next((inbox for inbox in inboxes if path.is_relative_to(inbox)), inboxes[0])
