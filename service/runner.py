"""`serve`: the worker pool, the inbox watcher, the scheduler and the HTTP API, by role.

Every instance runs the roles it is given (all three by default): `api` serves HTTP, `watch`
watches the inboxes (rescans, moving originals), `work` runs the worker pool. More machines add
workers against one PostgreSQL with `--role work`. Each instance also recovers expired leases:
that is one UPDATE, safe to run anywhere, and a batch survives whichever machine is lost.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import uvicorn
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

from whisper_transcriber.api.app import create_app
from whisper_transcriber.api.app_context import ApiContext, ConfiguredModel
from whisper_transcriber.api.browser_guard import BrowserPolicy
from whisper_transcriber.db.announcements import NOTIFY_CHANNEL, ChannelListener, listens
from whisper_transcriber.db.changes import JobChanges
from whisper_transcriber.db.errors import QueueError
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.values import JobRecord
from whisper_transcriber.db.webhook_outbox import Backoff, WebhookOutbox
from whisper_transcriber.db.worker_registry import WorkerRegistry
from whisper_transcriber.service.bootstrap import Prepared
from whisper_transcriber.service.http_protocol import (
    MAX_HEAD_BYTES,
    ConnectionLimits,
    guarded_protocol,
)
from whisper_transcriber.service.http_server import QuietServer
from whisper_transcriber.service.inboxes import confinement, file_filter, inboxes_from_settings
from whisper_transcriber.service.media_servers.setup import (
    media_server_hooks,
    media_servers_of,
    refresh_item,
)
from whisper_transcriber.service.retention import sweep as retention_sweep
from whisper_transcriber.service.retention import sweep_interval_s
from whisper_transcriber.service.run_again import RunAgain
from whisper_transcriber.service.settings import Settings
from whisper_transcriber.service.webhooks.http import TargetPolicy
from whisper_transcriber.service.webhooks.routing import Router, subscriptions_of
from whisper_transcriber.service.webhooks.rules import RequestCallbacks
from whisper_transcriber.service.webhooks.sender import WebhookSender
from whisper_transcriber.watcher.inbox import InboxWatcher
from whisper_transcriber.watcher.intake import Intake
from whisper_transcriber.watcher.originals import move_originals
from whisper_transcriber.worker.hand_back import hand_back_orphans
from whisper_transcriber.worker.pool_failed import PoolFailed
from whisper_transcriber.worker.renamed_files import RenamedFiles
from whisper_transcriber.worker.speakers.package import EmbedderMissing, weights_path
from whisper_transcriber.worker.supervisor import WorkerPool

REGISTRY_TIDY_S = 300.0
# How soon a rename of speakers shows in the files already written (a cheap indexed query).
# Renamed speakers are written into the files at once by the instance that was told (the API
# runs the pass now); this is how soon the other instances' passes find them.
RENAMED_FILES_S = 15.0
RENAMED_FILES_JOB = "renamed-files"

log = logging.getLogger(__name__)


class _Stop:
    """How the instance is told to end: a signal, or a pool that cannot work."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.server: QuietServer | None = None

    def __call__(self) -> None:
        self.requested.set()
        if self.server is not None:
            self.server.exit()


def serve(prepared: Prepared, sockets: list[socket.socket] | None = None) -> None:
    """Run until SIGINT/SIGTERM; PoolFailed when the workers cannot run at all. `sockets`: the
    HTTP API's, already bound (service/preflight.py); without them uvicorn binds host:port."""
    settings = prepared.settings
    store = prepared.store
    roles = set(settings.roles)
    log.info("roles: %s", ", ".join(sorted(roles)))
    stop = _Stop()

    pool = None
    if "work" in roles:
        handed_back = hand_back_orphans(store, prepared.registry)
        if handed_back:
            log.info(
                "handed back %s job(s) left running by a previous run: %s",
                len(handed_back),
                handed_back,
            )
        pool = prepared.worker_pool(on_failure=lambda _reason: stop())
        store.add_wake_listener(pool.wake)
    if "work" in roles:
        _warn_without_speakers(settings)
    announcements = (
        ChannelListener(settings.database_url, NOTIFY_CHANNEL, pool.wake, purpose="new jobs")
        if pool is not None and listens(settings.database_url)
        else None
    )
    # SQLite has no channel for new jobs: another process's (a `transcribe` command, a separate
    # api or watch instance) reach idle workers through a change feed, which watches the file.
    # With the API here, its own feed does it (_api_server).
    job_changes = (
        JobChanges(store, functools.partial(_wake_for_queued, pool))
        if pool is not None and announcements is None and "api" not in roles
        else None
    )
    watcher = (
        InboxWatcher(
            Intake(
                store,
                inboxes_from_settings(settings),
                file_filter(settings),
                confinement(settings),
            ),
            settle_s=settings.settle_s,
        )
        if "watch" in roles
        else None
    )
    webhooks = _webhook_sender(settings, store) if "watch" in roles else None
    renamed_files = RunAgain(_while_reachable(RenamedFiles(store).rewrite_renamed_files))
    scheduler = _scheduler(settings, store, watcher, prepared.registry, renamed_files)
    if "api" in roles:
        stop.server = _api_server(
            settings,
            store,
            pool,
            prepared.registry,
            on_renamed=functools.partial(_run_soon, scheduler, RENAMED_FILES_JOB, renamed_files),
        )

    _install_stop_handlers(stop, pool)
    if pool is not None:
        pool.start()
    try:
        if announcements is not None:
            announcements.start()
        if job_changes is not None:
            job_changes.start()
        if watcher is not None:
            watcher.start()
        if webhooks is not None:
            webhooks.start()
        scheduler.start()
        if stop.server is not None:
            for sock in sockets or []:  # uvicorn names its address only when it binds it itself
                log.info("HTTP API on http://%s", _address(sock))
            stop.server.run(sockets or None)  # returns on SIGINT or SIGTERM, or a failed pool
        else:
            while not stop.requested.wait(1.0):  # woken by a signal handler or the pool
                pass
    finally:
        log.info("shutting down")
        if scheduler.running:
            scheduler.shutdown(wait=False)
        if watcher is not None:
            watcher.stop()
        if webhooks is not None:
            webhooks.stop()
        if announcements is not None:
            announcements.stop()
        if job_changes is not None:
            job_changes.stop()
        if pool is not None:
            pool.stop(settings.shutdown_grace_s)
        prepared.db.dispose()
    if pool is not None and pool.failure is not None:
        raise PoolFailed(pool.failure)


def _api_server(
    settings: Settings,
    store: JobStore,
    pool: WorkerPool | None,
    registry: WorkerRegistry,
    *,
    on_renamed: Callable[[], None],
) -> QuietServer:
    app = create_app(
        ApiContext(
            store=store,
            default_options=settings.job_options(),
            allowed_roots=settings.api_roots(),
            served_roots=settings.read_roots(),
            uploads_dir=settings.uploads_dir.resolve(),
            max_upload_bytes=int(settings.max_upload_mb * 1024 * 1024),
            workers=pool,
            registry=registry,
            api_key=settings.api_key.get_secret_value() if settings.api_key else None,
            browser_policy=BrowserPolicy.of(
                settings.allowed_hosts, settings.allowed_origins, bound=settings.host
            ),
            on_renamed=on_renamed,
            default_model=ConfiguredModel(settings.model, settings.compute_type),
            models={
                name: ConfiguredModel(entry.model, entry.compute_type)
                for name, entry in settings.models.items()
            },
            callbacks=RequestCallbacks(
                callback_policy(settings),
                settings.callback_secret.get_secret_value() if settings.callback_secret else None,
            ),
            webhook_retry_s=settings.webhook_retry_s,
            media_servers=media_server_hooks(settings, store),
        )
    )
    if pool is not None and not listens(settings.database_url):
        # SQLite has no NOTIFY: a job queued by another process (`transcribe` handing its files
        # to this service) reaches the idle workers through the API's change feed, not the poll.
        app.state.events.add_listener(functools.partial(_wake_for_queued, pool))
    if not settings.api_key and not _loopback(settings.host):
        log.warning(
            "NO API KEY: the HTTP API listens on %s, beyond this machine, and anyone who reaches "
            "it can submit, read, cancel and retry jobs; set api_key (WHISPER_TRANSCRIBER_API_KEY)",
            settings.host,
        )
    limits = ConnectionLimits(
        header_timeout_s=settings.http_header_timeout_s,
        keepalive_timeout_s=settings.http_keepalive_timeout_s,
        body_idle_timeout_s=settings.http_body_idle_timeout_s,
        max_connections=settings.http_max_connections,
    )
    return QuietServer(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level.lower(),
            log_config=None,  # its lines go through our handler, in our format
            http=guarded_protocol(limits),
            h11_max_incomplete_event_size=MAX_HEAD_BYTES,
            ws="none",  # the app has no WebSocket routes: an upgrade is a plain request
        )
    )


def _webhook_sender(settings: Settings, store: JobStore) -> WebhookSender:
    """Deliveries go out from the instances that watch the inboxes (every instance by default)."""
    return WebhookSender(
        WebhookOutbox(store.engine, backoff=Backoff(first_s=settings.webhook_backoff_s)),
        Router(
            subscriptions_of(settings.webhooks),
            store,
            {name: entry.url for name, entry in settings.media_servers.items()},
        ),
        callback_policy=callback_policy(settings),
        refresh=functools.partial(refresh_item, media_servers_of(settings)),
        retry_s=settings.webhook_retry_s,
        timeout_s=settings.webhook_timeout_s,
        retention_s=settings.webhook_retention_s or None,
    )


def callback_policy(settings: Settings) -> TargetPolicy:
    """Where requests' callbacks may point (their deliveries are checked again when sent)."""
    return TargetPolicy(guarded=True, allow=tuple(settings.callback_allow))


def _wake_for_queued(pool: WorkerPool, job: JobRecord) -> None:
    if job.status is JobStatus.QUEUED:
        pool.wake()


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may well resolve beyond this machine


def _scheduler(
    settings: Settings,
    store: JobStore,
    watcher: InboxWatcher | None,
    registry: WorkerRegistry,
    renamed_files: RunAgain,
) -> BackgroundScheduler:
    scheduler = BackgroundScheduler()
    scheduler.add_job(
        _while_reachable(recover_leases),
        "interval",
        args=[store],
        seconds=max(settings.lease_s / 2, 1.0),
        id="leases",
    )
    # This machine's dead workers marked stopped, old rows removed: any instance may.
    scheduler.add_job(
        _while_reachable(registry.tidy),
        "interval",
        seconds=REGISTRY_TIDY_S,
        id="workers",
        next_run_time=datetime.now(UTC),
    )
    if watcher is not None:
        scheduler.add_job(
            _while_reachable(watcher.rescan),
            "interval",
            seconds=settings.rescan_interval_s,
            id="rescan",
        )
        # Originals a worker could not move (killed first, or failed by the supervisor), and once
        # right away for what a previous run left.
        scheduler.add_job(
            _while_reachable(move_originals),
            "interval",
            args=[store],
            seconds=settings.rescan_interval_s,
            id="originals",
            next_run_time=datetime.now(UTC),
        )
    # Renamed speakers written into the published files, where they can be reached: beside the
    # inboxes' files (watch) or wherever the workers write (work).
    if {"watch", "work"} & set(settings.roles):
        scheduler.add_job(
            renamed_files,
            "interval",
            seconds=RENAMED_FILES_S,
            id=RENAMED_FILES_JOB,
            next_run_time=datetime.now(UTC),
        )
    # Uploads live on the instances that receive them (api); the history is pruned where inboxes
    # or the API are looked after, not on every worker machine.
    uploads_dir = settings.uploads_dir if "api" in settings.roles else None
    job_retention_s = settings.job_retention_s if {"api", "watch"} & set(settings.roles) else 0.0
    upload_retention_s = settings.upload_retention_s if uploads_dir is not None else 0.0
    if upload_retention_s or job_retention_s:
        scheduler.add_job(
            _while_reachable(retention_sweep),
            "interval",
            args=[store, uploads_dir, upload_retention_s, job_retention_s],
            seconds=sweep_interval_s(upload_retention_s, job_retention_s),
            id="retention",
            next_run_time=datetime.now(UTC),
        )
    return scheduler


def _run_soon(scheduler: BackgroundScheduler, job_id: str, task: RunAgain) -> None:
    """The scheduler's job now, or once more right after the run under way (whose look may
    have come before what asks for it)."""
    if not task.again_if_running():
        _run_now(scheduler, job_id)


def _run_now(scheduler: BackgroundScheduler, job_id: str) -> None:
    """The scheduler's job, now rather than at its next turn; nothing where it has none (this
    instance's roles do not run it)."""
    with contextlib.suppress(JobLookupError):
        scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))


def recover_leases(store: JobStore) -> None:
    """Jobs whose worker stopped answering (gone, frozen, or its machine lost) run again."""
    for job in store.recover_expired():
        log.warning(
            "job %s: %s; attempt %s counted as failed (now %s)",
            job.id,
            job.error,
            job.attempts,
            job.status.value,
        )


def _while_reachable(task: Callable[..., Any]) -> Callable[..., None]:
    """A periodic task that, while the database is away, logs one line and waits for its next run."""

    @functools.wraps(task)
    def run(*args: Any) -> None:
        try:
            task(*args)
        except QueueError as exc:
            log.warning("%s skipped: %s", getattr(task, "__name__", "task"), exc)

    return run


def _install_stop_handlers(stop: _Stop, pool: WorkerPool | None) -> None:
    """uvicorn handles the first SIGINT/SIGTERM, then re-raises it to the handler found before it:
    this one, which lets the graceful shutdown run. A second signal ends everything at once."""
    signalled: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if signalled:
            log.warning(
                "second signal: stopping now; running jobs go back to the queue on next start"
            )
            if pool is not None:
                pool.kill()
            os._exit(1)
        signalled.append(signum)
        stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


def _warn_without_speakers(settings: Settings) -> None:
    """Speaker labels asked for by the settings or an inbox, and no embedder to make them: the
    jobs would end without them (each with a note); said once, at start."""
    asked = settings.diarize or any(inbox.diarize for inbox in settings.inboxes)
    if not asked:
        return
    try:
        weights_path()
    except EmbedderMissing as exc:
        log.warning("diarize is set, but %s; jobs will end without speaker labels", exc)
