"""The database from settings: opened (its schema upgraded) and the job store over it.

Apart from the model, its device and the worker pool (service/bootstrap.py), so that the CLI's
database commands (jobs, show, cancel, retry, db upgrade) load no model stack
(tests/integration/test_import_rules.py)."""

from __future__ import annotations

from sqlalchemy import Engine as DbEngine

from whisper_transcriber.db.engine import check_connection, make_engine
from whisper_transcriber.db.errors import DatabaseUnavailable
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.migrate import upgrade
from whisper_transcriber.db.values import RetryPolicy
from whisper_transcriber.db.worker_registry import WorkerRegistry
from whisper_transcriber.service.preflight import database_folder
from whisper_transcriber.service.settings import SettingError, Settings


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(base_delay_s=settings.retry_delay_s, max_delay_s=settings.retry_max_delay_s)


def open_database(settings: Settings, *, migrate: bool = True) -> DbEngine:
    """Connect (and upgrade the schema): an unreachable database, or a SQLite database whose
    folder cannot be created or written, is a SettingError."""
    database_folder(settings.database_url)
    try:
        db = make_engine(settings.database_url)
        check_connection(db)
        if migrate:
            upgrade(db)
    except DatabaseUnavailable as exc:
        raise SettingError("database_url", str(exc)) from exc
    return db


def job_store(settings: Settings, db: DbEngine) -> JobStore:
    """The job store with the settings' lease, attempts and retry backoff."""
    return JobStore(
        db,
        lease_s=settings.lease_s,
        max_attempts=settings.max_attempts,
        retry_policy=retry_policy(settings),
    )


def worker_registry(settings: Settings, store: JobStore) -> WorkerRegistry:
    return WorkerRegistry(
        store.engine, stale_after_s=settings.worker_stale_after_s, clock=store.clock
    )
