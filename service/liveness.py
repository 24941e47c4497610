"""`check`: whether this instance's workers on this machine are alive, from the worker registry;
the liveness probe of containers that run workers without serving HTTP."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError

from whisper_transcriber.db.engine import supported_url
from whisper_transcriber.db.errors import DatabaseUnavailable
from whisper_transcriber.db.process_identity import process_alive, this_machine
from whisper_transcriber.db.worker_registry import (
    WorkerInfo,
    WorkerRegistry,
    WorkerRole,
    instance_name,
)
from whisper_transcriber.service.database import job_store, open_database, worker_registry
from whisper_transcriber.service.settings import SettingError, Settings


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    lines: list[str]


def check_instance(settings: Settings) -> Verdict:
    """check_workers for the settings' instance. A database that does not answer is no reason to
    restart workers (they wait for it, and their heartbeats resume with it): healthy, said so.
    A URL that names no database this service can use is a SettingError, and a SQLite file that
    does not exist is unhealthy (no worker ever ran against it); `check` creates nothing."""
    try:
        url = supported_url(settings.database_url)
    except DatabaseUnavailable as exc:
        raise SettingError("database_url", str(exc)) from exc
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:") or "mode" in url.query:
            raise SettingError("database_url", "check needs the service's SQLite database file")
        if not Path(url.database).is_file():
            name = instance_name(settings.instance_name)
            return Verdict(False, [f"instance {name}: no database at {url.database}"])
    try:
        db = open_database(settings, migrate=False)
    except SettingError as exc:
        if not isinstance(exc.__cause__, DatabaseUnavailable):
            raise
        return _cannot_tell(exc.__cause__)
    try:
        if not inspect(db).has_table("workers"):  # a database no service of this version opened
            return Verdict(
                False,
                [
                    f"instance {instance_name(settings.instance_name)}: the database has no "
                    "worker registry (start the service, or run `whisper-transcriber db upgrade`)"
                ],
            )
        registry = worker_registry(settings, job_store(settings, db))
        return check_workers(registry, instance_name(settings.instance_name))
    except DatabaseUnavailable as exc:
        return _cannot_tell(exc)
    except SQLAlchemyError as exc:  # from inspect(), which the store's error handling does not wrap
        return _cannot_tell(DatabaseUnavailable(str(exc).splitlines()[0]))
    finally:
        db.dispose()


def _cannot_tell(exc: DatabaseUnavailable) -> Verdict:
    return Verdict(
        True, [f"cannot tell, the database does not answer ({exc}): not a reason to restart"]
    )


def _here(worker: WorkerInfo, machine: str | None) -> bool:
    """A worker of this machine now: rows of an earlier incarnation of a container (another pid
    namespace) or of processes that have since died are history, not this instance's workers."""
    if machine is not None:
        return worker.machine == machine and process_alive(worker.pid, worker.pid_started)
    return worker.host == socket.gethostname()  # no pid namespace to tell: the host's name


def check_workers(registry: WorkerRegistry, instance: str) -> Verdict:
    """Healthy when the instance has service workers on this machine and every one of them has
    beaten within the registry's stale limit."""
    machine = this_machine()
    workers = [
        worker
        for worker in registry.workers(instance=instance)
        if worker.role == WorkerRole.SERVICE and _here(worker, machine)
    ]
    if not workers:
        return Verdict(False, [f"instance {instance}: no worker of its pool runs on this machine"])
    stale = [worker for worker in workers if worker.stale]
    lines = [
        f"{worker.id}: {worker.state.value}, last heartbeat {worker.heartbeat_age_s:.0f} s ago"
        + (" (STALE)" if worker.stale else "")
        for worker in workers
    ]
    summary = (
        f"instance {instance}: {len(stale)} of {len(workers)} worker(s) stale"
        if stale
        else f"instance {instance}: {len(workers)} worker(s) alive"
    )
    return Verdict(not stale, [summary, *lines])
