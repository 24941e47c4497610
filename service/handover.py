"""Local `transcribe` next to a running service: its jobs go to that service's workers instead of
a pool of the command's own (which would load a model of its own and compete for the machine).

The rule, conservative (anything unsure runs a local pool, as before):
1. a service's worker pool serves this database: the worker registry (db/worker_registry.py)
   holds live workers of a service;
2. the service the settings describe, on this machine (host is a loopback address, localhost,
   or 0.0.0.0/:: asked on the loopback; port), works on the same database: after the command queued its jobs there, the service shows the
   first of them (GET /jobs/{id}) with the same source path, size, modification time and creation
   moment, which only a service reading that database can;
   and it can open every file (GET /jobs/{id}/audio answers: the file it opens there is the one
   queued, so its workers, running as it does, can read it too);
3. the command was not told how to run the work itself (--model, --device, --compute-type,
   --workers, --threads-per-worker, --job-timeout-s, or --local).
While it waits, the command looks at the registry every SERVICE_CHECK_S; when no service worker
is live three looks running, the jobs not yet ended get a local pool after all.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from whisper_transcriber.db.errors import QueueError
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.process_identity import process_alive, this_machine
from whisper_transcriber.db.values import JobRecord
from whisper_transcriber.db.worker_registry import WorkerRegistry, WorkerRole
from whisper_transcriber.service.client import Refused, ServiceClient
from whisper_transcriber.service.settings import SettingError, Settings

# Flags (settings) that say how this command should run the work: a pool of its own then.
POOL_SETTINGS = (
    "model",
    "device",
    "compute_type",
    "workers",
    "threads_per_worker",
    "job_timeout_s",
)
PROBE_TIMEOUT_S = 3.0
WAIT_POLL_S = 0.5
SERVICE_CHECK_S = 10.0
MISSED_CHECKS = 3


def probe_url(settings: Settings) -> str | None:
    """Where this machine reaches the service the settings describe; None when it listens
    elsewhere than the loopback (another machine's name or address: its workers may not see
    this machine's files)."""
    host = settings.host.strip("[]")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if host.lower() != "localhost":
        try:
            if not ipaddress.ip_address(host).is_loopback:
                return None
        except ValueError:
            return None
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def serving_workers(registry: WorkerRegistry) -> int:
    """Live workers of services' pools on this database (a command's own pool does not count;
    a worker of this machine counts while its process runs, not until it turns stale)."""
    try:
        workers = registry.workers()
    except QueueError:
        return 0
    here = this_machine()
    return sum(
        1
        for worker in workers
        if worker.live
        and worker.role == WorkerRole.SERVICE
        and (
            here is None or worker.machine != here or process_alive(worker.pid, worker.pid_started)
        )
    )


def find_service(settings: Settings, registry: WorkerRegistry) -> ServiceClient | None:
    """A client of the service at the settings' host and port, when a service's pool serves
    this database."""
    url = probe_url(settings)
    if url is None or serving_workers(registry) < 1:
        return None
    key = settings.api_key.get_secret_value() if settings.api_key else None
    return ServiceClient(url, key, timeout_s=PROBE_TIMEOUT_S)


def _moment(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def shows_job(client: ServiceClient, job: JobRecord) -> bool:
    """Whether the service reads the same database: it shows this job as it was recorded."""
    try:
        shown = client.job(job.id)
    except (Refused, SettingError):
        return False
    return (
        shown.get("id") == job.id
        and shown.get("source_path") == job.source_path
        and shown.get("source_size") == job.source_size
        and shown.get("source_mtime_ns") == job.source_mtime_ns
        and _moment(shown.get("created_at")) == job.created_at
    )


def wait_for_service(
    store: JobStore,
    jobs: Sequence[JobRecord],
    registry: WorkerRegistry,
    on_update: Callable[[list[JobRecord]], None],
    sleep: Callable[[float], None] = time.sleep,
) -> list[JobRecord] | None:
    """The final records, in order, once the services' workers have ended every job; None when
    they went away first (the caller runs the rest itself)."""
    ids = [job.id for job in jobs]
    last_check = time.monotonic()
    missed = 0
    while True:
        current = {job.id: job for job in store.get_many(ids)}
        on_update(list(current.values()))
        if all(job.status.is_final for job in current.values()):
            return [current[job_id] for job_id in ids]
        if time.monotonic() - last_check >= SERVICE_CHECK_S:
            last_check = time.monotonic()
            missed = 0 if serving_workers(registry) > 0 else missed + 1
            if missed >= MISSED_CHECKS:
                return None
        sleep(WAIT_POLL_S)
