"""The body of one worker process: load the model once, then claim and run jobs until told to stop."""

from __future__ import annotations

import ctypes
import gc
import logging
import multiprocessing.queues
import multiprocessing.sharedctypes
import multiprocessing.synchronize
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import psutil

from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.db.errors import QueueError
from whisper_transcriber.db.job_store import MODEL_PREFERENCE_S, JobStore
from whisper_transcriber.db.values import RetryPolicy
from whisper_transcriber.db.worker_registry import (
    WorkerRegistry,
    WorkerRole,
    WorkerState,
    worker_id_for,
)
from whisper_transcriber.worker.confinement import Confinement
from whisper_transcriber.worker.defaults import DEFAULT_ENGINE
from whisper_transcriber.worker.engine import Engine, ModelSpec, engine_class
from whisper_transcriber.worker.job_runner import run_job
from whisper_transcriber.worker.model_cache import ModelCache, NamedModel
from whisper_transcriber.worker.registration import Registration
from whisper_transcriber.worker.split_files import NO_SPLIT, SplitRules

ORPHAN_CHECK_S = 1.0
# Exit status of a worker that could not load its model (its reason goes on the errors queue).
START_FAILED_EXIT = 3
# Exit status of a worker that stopped to be replaced by a fresh one (see Recycling).
RECYCLE_EXIT = 4
# After an unexpected error while claiming: the pause before the next try.
DATABASE_AWAY_PAUSE_S = 5.0  # after a failed claim, before the next try
CLAIM_SURPRISE_PAUSE_S = 1.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recycling:
    """When a worker steps down for a fresh process: after so many jobs, or above a memory size.

    Checked between jobs (never mid-job), as Celery's max_tasks_per_child and
    max_memory_per_child are: whatever a decoder or the model leaks is returned to the system."""

    max_jobs: int | None = None
    max_memory_bytes: int | None = None

    def reason(self, jobs_done: int, rss_bytes: int) -> str | None:
        if self.max_jobs is not None and jobs_done >= self.max_jobs:
            return f"{jobs_done} jobs done"
        if self.max_memory_bytes is not None and rss_bytes > self.max_memory_bytes:
            return f"memory {rss_bytes / 2**20:.0f} MiB is above {self.max_memory_bytes / 2**20:.0f} MiB"
        return None


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker process needs, as plain picklable values (processes are spawned)."""

    database_url: str
    model: ModelSpec
    device: str
    compute_type: str
    threads: int
    lease_s: float
    poll_interval_s: float
    retry_policy: RetryPolicy
    confinement: Confinement
    # Called first thing in the process to set up its logging: the service's own (a picklable
    # partial, service/logs.py), handed over as the worker never imports the service. None: Python's
    # default (warnings and errors to stderr).
    logging_setup: Callable[[], None] | None = None
    recycling: Recycling = Recycling()
    max_audio_duration_s: float | None = None  # longer files fail at once (worker/media.py)
    niceness: int = 0  # added to the supervisor's nice value (0: the same priority)
    engine: str = DEFAULT_ENGINE  # module:Class, imported in the worker process (engine_class)
    instance: str = ""  # the instance's name in the worker registry
    role: WorkerRole = WorkerRole.SERVICE
    # The other models jobs may name (the models setting), loaded on demand (worker/model_cache.py).
    models: Mapping[str, NamedModel] = field(default_factory=dict)
    model_memory_bytes: int | None = None  # the others' budget; None: no limit
    model_idle_s: float | None = None  # an other model unused this long is dropped; None: kept
    prefer_held_s: float = MODEL_PREFERENCE_S  # see JobStore.claim
    split: SplitRules = NO_SPLIT  # long files as pieces for every worker (split_after_s)


@dataclass(frozen=True)
class WorkerLink:
    """What a worker shares with its supervisor; handed over when the process is spawned."""

    index: int
    parent_pid: int
    token: str  # with the host and pid, this worker's id (db/worker_registry.py)
    stop: multiprocessing.synchronize.Event
    # The read end of this worker's own wake-up pipe: a byte on it means "look at the queue".
    # A pipe, not a shared Condition: a condition's notify waits for every sleeper to wake, so
    # one worker killed in its sleep (the OOM killer, kill -9) would hang every later wake-up.
    wake: multiprocessing.connection.Connection
    errors: multiprocessing.queues.Queue  # type: ignore[type-arg]
    # 1 once the model is loaded: a shared byte, read and written without a lock. (An Event's
    # is_set takes a lock that the worker holds while setting it; a worker killed just then
    # would hang every later reader: the supervisor, and the API's /ready and /metrics.)
    ready: ctypes.c_byte
    # The job in hand (0 when idle), for the supervisor's timeout and crash handling.
    job_id: multiprocessing.sharedctypes.Synchronized  # type: ignore[type-arg]
    attempt: multiprocessing.sharedctypes.Synchronized  # type: ignore[type-arg]
    job_started: multiprocessing.sharedctypes.Synchronized  # type: ignore[type-arg]
    # (job id, attempt) the supervisor found lost (cancelled, taken over): it stops at once.
    abandoned: multiprocessing.sharedctypes.SynchronizedArray  # type: ignore[type-arg]

    def is_ready(self) -> bool:
        return bool(self.ready.value)

    def report_job(self, job_id: int, attempt: int) -> None:
        with self.job_id.get_lock():
            self.job_id.value = job_id
            self.attempt.value = attempt
            self.job_started.value = time.monotonic()

    def abandons(self, job_id: int, attempt: int) -> bool:
        """Whether the supervisor found this attempt lost."""
        return list(self.abandoned[:]) == [job_id, attempt]

    def forget_wake_ups(self) -> None:
        """Drop the wake-ups so far: called before looking at the queue, so that one that comes
        while it looks ends the wait after it."""
        fd = self.wake.fileno()
        while self.wake.poll():
            if not os.read(fd, 4096):
                return  # the supervisor's end is closed: the parent is going

    def wait_for_work(self, timeout_s: float, until: Callable[[], bool] | None = None) -> None:
        """Sleep until woken or stopped or timeout_s passes (returns at once if a wake-up came
        since forget_wake_ups), or until `until` says so. Looks every ORPHAN_CHECK_S for a dead
        parent (and at `until`), without touching the database."""
        deadline = time.monotonic() + timeout_s
        while not self.orphaned() and not self.stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.wake.poll(min(remaining, ORPHAN_CHECK_S)):
                return
            if until is not None and until():
                return

    def doing(self) -> tuple[WorkerState, int | None]:
        """What the worker does now, for its heartbeat."""
        if not self.is_ready():
            return WorkerState.STARTING, None
        job_id = self.job_id.value
        return (WorkerState.BUSY, job_id) if job_id else (WorkerState.IDLE, None)

    def orphaned(self) -> bool:
        """The service died without stopping us (kill -9): we were handed to another parent."""
        return os.getppid() != self.parent_pid


def idle_wait_s(next_due: datetime | None, poll_interval_s: float, now: datetime) -> float:
    """Until the next backed-off job is due, at most the fallback poll interval."""
    if next_due is None:
        return poll_interval_s
    return min(max((next_due - now).total_seconds(), 0.0), poll_interval_s)


def _load_engine(config: WorkerConfig, choice: NamedModel) -> Engine:
    return engine_class(config.engine)(
        choice.spec,
        config.device,
        choice.compute_type,
        config.threads,
        max_audio_duration_s=config.max_audio_duration_s,
    )


def worker_main(config: WorkerConfig, link: WorkerLink) -> None:
    """Entry point of a spawned worker process; it exits when told to stop or its parent is gone."""
    # Ctrl-C (and systemd's SIGTERM to the whole group) reach every process; the supervisor
    # decides how workers stop, and kills them with SIGKILL when it must.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if config.niceness:  # below the API and the watcher, which share the machine's cores
        os.nice(config.niceness)
    if config.logging_setup is not None:
        config.logging_setup()
    db_engine = make_engine(config.database_url)
    store = JobStore(db_engine, lease_s=config.lease_s, retry_policy=config.retry_policy)
    me = worker_id_for(link.token, os.getpid())
    models: ModelCache | None = None
    registration = Registration(
        WorkerRegistry(db_engine, clock=store.clock),
        me,
        config.instance,
        config.role,
        link.doing,
        holding=lambda: models.names if models is not None else (),
    )
    try:
        registration.start()  # DatabaseRefused: it could never claim (worker/registration.py)
        load = partial(_load_engine, config)
        engine = load(NamedModel(config.model, config.compute_type))
        models = ModelCache(
            engine,
            config.models,
            load,
            budget_bytes=config.model_memory_bytes,
            idle_s=config.model_idle_s,
        )
    except Exception as exc:
        registration.close()
        db_engine.dispose()
        link.errors.put(str(exc))
        link.errors.close()
        link.errors.join_thread()
        sys.exit(START_FAILED_EXIT)
    # What was loaded (the service's modules, the model's objects) lives as long as the process:
    # frozen out of the collector's sweeps, which otherwise walk all of it again and again.
    gc.collect()
    gc.freeze()
    me_process = psutil.Process()
    jobs_done = 0
    surprises: set[str] = set()  # unexpected claim errors already logged with their traceback
    link.ready.value = 1
    log.info(
        "worker %s ready: %s on %s/%s",
        me,
        config.model.name_or_path,
        engine.device,
        engine.compute_type,
    )
    try:
        while not link.stop.is_set():
            if link.orphaned():
                log.warning("worker %s: parent process is gone; exiting", me)
                break
            link.forget_wake_ups()
            if not registration.registered.is_set():
                # A job is claimed only under a registered id, so that if this pool is killed
                # its next start knows the job's holder is gone (the heartbeat keeps trying);
                # registered, it looks at the queue at once, not at the next fallback poll.
                link.wait_for_work(config.poll_interval_s, until=registration.registered.is_set)
                continue
            next_drop = models.drop_idle()
            try:
                job = store.claim(
                    me,
                    held=models.held(),
                    known=models.known(),
                    prefer_held_s=config.prefer_held_s,
                )
                next_due = None if job else store.next_due(models.known())
            except QueueError as exc:  # the database is away or busy: nothing will wake us for it
                log.warning("worker %s: cannot claim: %s", me, exc)
                link.wait_for_work(min(DATABASE_AWAY_PAUSE_S, config.poll_interval_s))
                continue
            except Exception as exc:  # a bug, a row that cannot be read: the loop goes on
                surprise = f"{type(exc).__name__}: {exc}"
                log.error(  # the traceback once, then a line each time
                    "worker %s: claiming failed: %s; trying again in %g s",
                    me,
                    surprise,
                    CLAIM_SURPRISE_PAUSE_S,
                    exc_info=exc if surprise not in surprises else None,
                )
                surprises.add(surprise)
                link.wait_for_work(min(CLAIM_SURPRISE_PAUSE_S, config.poll_interval_s))
                continue
            if job is None:
                wait_s = idle_wait_s(next_due, config.poll_interval_s, store.clock())
                link.wait_for_work(wait_s if next_drop is None else min(wait_s, next_drop))
                continue
            link.report_job(job.id, job.attempts)
            try:
                run_job(
                    store,
                    partial(models.engine_for, job.options.model),
                    job,
                    config.confinement,
                    partial(link.abandons, job.id, job.attempts),
                    config.split,
                )
            finally:
                link.report_job(0, 0)
                models.used(job.options.model)  # idle from the job's end, not its start
            jobs_done += 1
            recycle = config.recycling.reason(jobs_done, me_process.memory_info().rss)
            if recycle is not None:
                log.info("worker %s: stepping down for a fresh process (%s)", me, recycle)
                sys.exit(RECYCLE_EXIT)
    finally:
        registration.close()
        db_engine.dispose()
