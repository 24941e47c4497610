"""`serve`: the worker pool, the inbox watcher, the scheduler and the HTTP API in one command."""

from __future__ import annotations

import logging
import os
import signal
from datetime import UTC, datetime
from types import FrameType

import uvicorn
from apscheduler.schedulers.background import BackgroundScheduler

from api.app import create_app
from api.app_context import ApiContext
from db.announcements import JobAnnouncements, listens
from service.bootstrap import Prepared
from service.inboxes import file_filter, inboxes_from_settings
from watcher.inbox import InboxWatcher
from watcher.intake import Intake
from worker.originals import move_originals
from worker.supervisor import PoolFailed, WorkerPool, hand_back_orphans

log = logging.getLogger(__name__)


def serve(prepared: Prepared) -> None:
    """Run until SIGINT/SIGTERM; PoolFailed when the workers cannot run at all."""
    settings = prepared.settings
    store = prepared.store
    options = settings.job_options()
    intake = Intake(store, inboxes_from_settings(settings), file_filter(settings))

    handed_back = hand_back_orphans(store)
    if handed_back:
        log.info(
            "handed back %s job(s) left running by a previous run: %s",
            len(handed_back),
            handed_back,
        )

    servers: list[uvicorn.Server] = []

    def on_pool_failure(_reason: str) -> None:
        for server in servers:
            server.should_exit = True

    pool = prepared.worker_pool(on_failure=on_pool_failure)
    app = create_app(
        ApiContext(
            store=store,
            default_options=options,
            allowed_roots=settings.api_roots(),
            uploads_dir=settings.uploads_dir.resolve(),
            max_upload_bytes=int(settings.max_upload_mb * 1024 * 1024),
            workers=pool,
            api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        )
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=settings.host, port=settings.port, log_level=settings.log_level.lower()
        )
    )
    servers.append(server)
    store.add_wake_listener(pool.wake)
    announcements = (
        JobAnnouncements(settings.database_url, pool.wake)
        if listens(settings.database_url)
        else None
    )
    watcher = InboxWatcher(intake, settle_s=settings.settle_s)
    scheduler = BackgroundScheduler()
    scheduler.add_job(
        store.recover_expired, "interval", seconds=max(settings.lease_s / 2, 1.0), id="leases"
    )
    scheduler.add_job(watcher.rescan, "interval", seconds=settings.rescan_interval_s, id="rescan")
    # Originals a worker could not move (killed first, or failed by the supervisor), and once
    # right away for what a previous run left.
    scheduler.add_job(
        move_originals,
        "interval",
        args=[store],
        seconds=settings.rescan_interval_s,
        id="originals",
        next_run_time=datetime.now(UTC),
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
