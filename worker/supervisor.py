"""The worker pool and its supervisor: one-for-one restarts, job timeouts, wake-ups, shutdown.

Like an OTP supervisor, it owns its children: a worker that dies is replaced at once and the job it
held is given up right away (a failed attempt, retried after the backoff); a job that runs past the
timeout has its worker killed and replaced, and so has a worker still running an attempt that lost
its job, a second after the supervisor saw it (worker/lost_attempts.py). A worker that dies before
it is ready, again and again, means the pool cannot work at all (a broken model): the pool stops
with that reason instead of restarting forever.

Over 400 lines on purpose: the pool's lifecycle and every way a child ends (exit, timeout, lost
attempt, shutdown) share the slots and their locks, and read best side by side. What does not
touch them lives apart: giving jobs back (worker/hand_back.py), lost attempts
(worker/lost_attempts.py), the child's own loop (worker/process.py).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_for_exits
from multiprocessing.context import SpawnProcess
from queue import Empty

from whisper_transcriber.db.errors import LeaseLost, QueueError
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.values import JobRecord
from whisper_transcriber.db.worker_registry import WorkerRegistry, new_worker_token, worker_id_for
from whisper_transcriber.worker.defaults import STOP_GRACE_S
from whisper_transcriber.worker.hand_back import release, remove_temporaries
from whisper_transcriber.worker.lost_attempts import ABANDON_GRACE_S, LostAttempt, track, why_lost
from whisper_transcriber.worker.pool_failed import PoolFailed
from whisper_transcriber.worker.process import (
    RECYCLE_EXIT,
    WorkerConfig,
    WorkerLink,
    worker_main,
)

MAX_START_FAILURES = 3  # consecutive deaths before a worker was ever ready
SUPERVISE_TICK_S = 1.0  # deaths wake it at once (sentinels); this paces its look at the jobs
# A killed process is gone in milliseconds; one stuck in the kernel (a dead NFS server) dies when
# it comes back, and runs none of its own code meanwhile: nobody waits longer for it.
KILL_WAIT_S = 1.0

log = logging.getLogger(__name__)


@dataclass
class _Slot:
    index: int
    process: SpawnProcess
    link: WorkerLink
    waker: Connection  # the write end of the worker's wake-up pipe (non-blocking)
    worker_id: str  # as the worker names itself in the registry and on the jobs it claims
    restarts: int = 0
    start_failures: int = 0
    lost: LostAttempt | None = None  # the attempt it holds lost its job (cancelled, taken over)

    def wake_up(self) -> None:
        """One byte, never blocking: a full pipe already holds a wake-up, a gone worker none."""
        # BlockingIOError, BrokenPipeError, or the end already closed for a replacement.
        with contextlib.suppress(OSError):
            os.write(self.waker.fileno(), b"w")

    def close(self) -> None:
        self.waker.close()

    @property
    def name(self) -> str:
        return f"worker-{self.index + 1}"

    def holds_a_job(self) -> bool:
        """Read without the lock the worker shares: a request never waits on a worker, even one
        killed while it held that lock. (A read torn by a change in flight is still a count.)"""
        return bool(self.link.job_id.get_obj().value)

    def running_job(self) -> tuple[int, int, float] | None:
        """(job id, attempt, monotonic start) of the job in hand, as the worker last reported it."""
        with self.link.job_id.get_lock():
            job_id = self.link.job_id.value
            if not job_id:
                return None
            return job_id, self.link.attempt.value, self.link.job_started.value


@dataclass
class _Shared:
    """Primitives every worker of the pool shares with the supervisor."""

    stop: multiprocessing.synchronize.Event
    errors: multiprocessing.queues.Queue  # type: ignore[type-arg]
    slots: list[_Slot] = field(default_factory=list)


class WorkerPool:
    """Starts, supervises and stops the worker processes; the same for the CLI and the service."""

    def __init__(
        self,
        config: WorkerConfig,
        size: int,
        store: JobStore,
        *,
        job_timeout_s: float,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.size = size
        self.store = store
        self.registry = WorkerRegistry(store.engine, clock=store.clock)
        self.job_timeout_s = job_timeout_s
        self.on_failure = on_failure
        self.restarts = 0
        self.recycles = 0
        self.failure: str | None = None
        self._context = multiprocessing.get_context("spawn")  # no inherited threads or sockets
        self._shared = _Shared(
            stop=self._context.Event(),
            errors=self._context.Queue(),
        )
        self._stopping = threading.Event()
        # Closed by stop(): wakes the supervisor's wait at once.
        self._interrupt, self._interrupt_sender = multiprocessing.Pipe(duplex=False)
        self._supervisor = threading.Thread(target=self._supervise, name="supervisor", daemon=True)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._shared.slots = [self._spawn(index) for index in range(self.size)]
        self._supervisor.start()
        log.info("started %s worker process(es), %s thread(s) each", self.size, self.config.threads)

    def wake(self) -> None:
        """A job became due: idle workers look at the queue now (called from any thread)."""
        for slot in list(self._shared.slots):
            slot.wake_up()

    def busy(self) -> int:
        return sum(1 for slot in self._shared.slots if slot.holds_a_job())

    def ready(self) -> int:
        """Workers alive with their model loaded."""
        return sum(
            1 for slot in self._shared.slots if slot.process.is_alive() and slot.link.is_ready()
        )

    def alive(self) -> int:
        return sum(1 for slot in self._shared.slots if slot.process.is_alive())

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop claiming; running jobs get grace_s to finish, the rest go back to the queue.

        Meanwhile a worker whose job is cancelled is killed as at any time; it returns at most
        about KILL_WAIT_S after the grace."""
        deadline = time.monotonic() + grace_s
        self._stopping.set()
        self._shared.stop.set()
        self._interrupt_sender.close()
        self.wake()
        running = sum(1 for slot in self._shared.slots if slot.link.job_id.value)
        if running:  # what a stop that takes a while is waiting for
            log.info("stopped claiming; %s running job(s) get %g s to finish", running, grace_s)
        if self._supervisor.is_alive():
            self._supervisor.join()
        slots = self._shared.slots
        while (alive := [slot for slot in slots if slot.process.is_alive()]) and (
            remaining := deadline - time.monotonic()
        ) > 0:
            sentinels = [slot.process.sentinel for slot in alive]
            wait_for_exits(sentinels, timeout=min(remaining, SUPERVISE_TICK_S))
            try:
                self._check_lost(replace=False)
            except Exception as exc:  # the database is away, a surprise: the grace still ends
                log.warning("supervisor: %s: %s", type(exc).__name__, exc)
        busy = [slot for slot in slots if slot.process.is_alive()]
        for slot in busy:
            log.warning("%s still busy after %.0f s; handing its job back", slot.name, grace_s)
            slot.process.kill()
        killed_by = time.monotonic() + KILL_WAIT_S
        for slot in busy:
            slot.process.join(max(killed_by - time.monotonic(), 0.0))
            self._hand_back(slot)
        for slot in self._shared.slots:
            if slot.process.exitcode is not None:
                self._unregister(slot)  # (a no-op for one that ended by itself and said so)
            slot.close()
        self._shared.slots = []
        self._interrupt.close()

    def kill(self) -> None:
        """Immediate stop: what was running is handed back on the next start."""
        for slot in self._shared.slots:
            if slot.process.is_alive():
                slot.process.kill()

    # -- supervision --------------------------------------------------------------------------

    def _spawn(self, index: int, restarts: int = 0, start_failures: int = 0) -> _Slot:
        wake_reader, wake_writer = self._context.Pipe(duplex=False)
        os.set_blocking(wake_writer.fileno(), False)  # a full pipe already holds a wake-up
        link = WorkerLink(
            index=index,
            parent_pid=os.getpid(),
            token=new_worker_token(),
            stop=self._shared.stop,
            wake=wake_reader,
            errors=self._shared.errors,
            ready=self._context.RawValue("b", 0),
            job_id=self._context.Value("q", 0),
            attempt=self._context.Value("q", 0),
            job_started=self._context.Value("d", 0.0),
            abandoned=self._context.Array("q", 2),
        )
        process = self._context.Process(
            target=worker_main, args=(self.config, link), name=f"worker-{index + 1}"
        )
        process.start()
        wake_reader.close()  # the worker has its own copy now
        worker_id = worker_id_for(link.token, process.pid or 0)
        return _Slot(index, process, link, wake_writer, worker_id, restarts, start_failures)

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            slots = list(self._shared.slots)
            wait_for_exits(
                [slot.process.sentinel for slot in slots] + [self._interrupt],
                timeout=self._until_next_check(slots),
            )
            if self._stopping.is_set():
                return
            database_away = False
            for slot in slots:
                try:
                    if not slot.process.is_alive():
                        self._on_exit(slot)
                    else:
                        self._check_timeout(slot)
                except PoolFailed as exc:
                    self._fail(str(exc))
                    return
                except QueueError as exc:  # the database is away; try again next tick
                    log.warning("supervisor: %s", exc)
                    database_away = True
                except Exception as exc:  # a surprise must not end supervision: next tick again
                    log.error(
                        "supervisor: handling %s failed: %s: %s; trying again",
                        slot.name,
                        type(exc).__name__,
                        exc,
                        exc_info=_first_time(exc),
                    )
                    database_away = True  # (the same pause)
            try:
                self._check_lost(replace=True)
            except QueueError as exc:
                log.warning("supervisor: %s", exc)
                database_away = True
            except Exception as exc:  # as above
                log.error(
                    "supervisor: checking for lost attempts failed: %s: %s; trying again",
                    type(exc).__name__,
                    exc,
                    exc_info=_first_time(exc),
                )
                database_away = True
            if database_away:  # a dead worker's sentinel stays ready: no busy loop meanwhile
                self._stopping.wait(SUPERVISE_TICK_S)

    def _until_next_check(self, slots: list[_Slot]) -> float:
        """A tick, or less when a lost attempt's grace ends sooner. (A timeout is seen within a
        tick of its deadline: jobs get at least --job-timeout, at most a second more.)"""
        now = time.monotonic()
        due = min([now + SUPERVISE_TICK_S] + [s.lost.deadline for s in slots if s.lost])
        return max(due - now, 0.01)

    def _on_exit(self, slot: _Slot) -> None:
        code = slot.process.exitcode
        start_failures = 0
        if code == RECYCLE_EXIT:
            self.recycles += 1
            log.info(
                "%s (pid %s) recycled (#%s of the pool)", slot.name, slot.process.pid, self.recycles
            )
            self._replace(slot, 0, restart=False)
            return
        if not slot.link.is_ready():
            start_failures = slot.start_failures + 1
            reason = self._start_error() or f"exit code {code}"
            log.error(
                "%s could not start (%s/%s): %s",
                slot.name,
                start_failures,
                MAX_START_FAILURES,
                reason,
            )
            if start_failures >= MAX_START_FAILURES:
                raise PoolFailed(f"worker processes cannot start: {reason}")
        else:
            log.warning("%s (pid %s) died with exit code %s", slot.name, slot.process.pid, code)
            self._give_up_jobs(slot, f"worker process died (exit code {code})")
        self._replace(slot, start_failures)

    def _check_timeout(self, slot: _Slot) -> None:
        running = slot.running_job()
        if running is None:
            return
        job_id, attempt, started = running
        if time.monotonic() - started <= self.job_timeout_s:
            return
        if not self._kill_holding(slot, job_id, attempt):
            return  # it finished just now
        log.warning(
            "job %s: timed out after %g s; killing %s", job_id, self.job_timeout_s, slot.name
        )
        self._give_up(job_id, attempt, f"timed out after {self.job_timeout_s:g} s")
        self._give_up_jobs(slot, "worker process killed")
        self._replace(slot, 0)

    def _replace(self, slot: _Slot, start_failures: int, *, restart: bool = True) -> None:
        self._unregister(slot)
        replacement = self._spawn(slot.index, slot.restarts + restart, start_failures)
        self._shared.slots[self._shared.slots.index(slot)] = replacement
        slot.close()
        if not restart:
            return
        self.restarts += 1
        log.info(
            "%s restarted (pid %s, restart #%s of the pool)",
            slot.name,
            replacement.process.pid,
            self.restarts,
        )

    def _check_lost(self, *, replace: bool) -> None:
        """Kills (and with `replace`, replaces) a worker that still holds an attempt
        ABANDON_GRACE_S after the supervisor saw it lose its job; one query for every busy slot.

        A lost attempt never holds its job again (a claim is a new attempt), so a kill that is due
        needs no fresh look at the database."""
        now = time.monotonic()
        for slot in list(self._shared.slots):
            lost = slot.lost
            if lost is not None and now >= lost.deadline:
                slot.lost = None
                self._stop_lost(slot, lost, replace=replace)
        busy: list[tuple[_Slot, int, int]] = []
        for slot in self._shared.slots:
            running = slot.running_job() if slot.process.is_alive() else None
            if running is None:
                slot.lost = None
            else:
                busy.append((slot, running[0], running[1]))
        if not busy:
            return
        jobs = {job.id: job for job in self.store.get_many([job_id for _, job_id, _ in busy])}
        for slot, job_id, attempt in busy:
            slot.lost = track(slot.lost, job_id, attempt, jobs.get(job_id), now)
            if slot.lost is not None:  # it may not know yet: its heartbeat looks every second
                slot.link.abandoned[:] = [job_id, attempt]

    def _stop_lost(self, slot: _Slot, lost: LostAttempt, *, replace: bool) -> None:
        if not self._kill_holding(slot, lost.job_id, lost.attempt):
            return  # it stopped by itself just now
        log.warning(
            "job %s: attempt %s %s; %s (pid %s) had not stopped %g s later and was killed%s",
            lost.job_id,
            lost.attempt,
            lost.reason,
            slot.name,
            slot.process.pid,
            ABANDON_GRACE_S,
            " (its replacement counts as a restart)" if replace else "",
        )
        if replace:
            self._replace(slot, 0)
        self._hand_back(slot)  # a job it may have claimed meanwhile: nothing of it was done
        if slot.process.exitcode is None:
            return  # not dead yet (stuck in the kernel): it may still have a file open
        # Its temporaries go only if nobody works on the job now; the job itself stays as it is.
        # (A piece of a split file is deleted when its file's job ends: then it is gone.)
        job = next(iter(self.store.get_many([lost.job_id])), None)
        lost_now = why_lost(job, lost.attempt)
        if job is not None and lost_now is not None and lost_now[1]:
            remove_temporaries(job)

    def _kill_holding(self, slot: _Slot, job_id: int, attempt: int) -> bool:
        """Kill the worker if it still holds this attempt. Its link stays locked until the signal
        is sent, so it cannot let the job go and wait for work meanwhile: an idle worker is never
        killed while it waits for work."""
        with slot.link.job_id.get_lock():
            if (slot.link.job_id.value, slot.link.attempt.value) != (job_id, attempt):
                return False
            slot.process.kill()
        slot.process.join(KILL_WAIT_S)
        return True

    def _jobs_held_by(self, slot: _Slot) -> list[JobRecord]:
        """What the worker held, as the database knows it (also a claim it never reported)."""
        return [job for job in self.store.running() if job.worker_id == slot.worker_id]

    def _give_up_jobs(self, slot: _Slot, reason: str) -> None:
        for job in self._jobs_held_by(slot):
            self._give_up(job.id, job.attempts, reason)

    def _give_up(self, job_id: int, attempt: int, reason: str) -> None:
        try:
            job = self.store.fail(job_id, attempt, reason)
        except LeaseLost:
            return  # it finished, or someone else already took it over
        log.warning(
            "job %s: attempt %s failed: %s (now %s)", job_id, attempt, reason, job.status.value
        )
        remove_temporaries(job)

    def _hand_back(self, slot: _Slot) -> None:
        for job in self._jobs_held_by(slot):
            if release(self.store, job):
                log.info("job %s: handed back to the queue", job.id)

    def _unregister(self, slot: _Slot) -> None:
        """A dead worker's row says so (it could not say it itself); the database may be away:
        then its row goes stale, and the registry still knows the process is gone."""
        if slot.process.pid is None:
            return
        try:
            self.registry.stopped(slot.worker_id)
        except QueueError as exc:
            log.warning("supervisor: could not mark %s stopped: %s", slot.name, exc)

    def _start_error(self) -> str | None:
        try:
            message: str = self._shared.errors.get(timeout=1.0)
        except Empty:
            return None
        lines = message.strip().splitlines()
        return lines[0] if lines else None  # the reason goes on one line of the CLI's output

    def _fail(self, reason: str) -> None:
        log.error("worker pool stopped: %s", reason)
        self.failure = reason
        if self.on_failure is not None:
            self.on_failure(reason)


_surprises_seen: set[tuple[str, str]] = set()


def _first_time(exc: Exception) -> Exception | None:
    """The exception the first time one like it is seen (for its traceback), then None: a
    failure that repeats every tick is one line a tick, not a traceback a second."""
    key = (type(exc).__name__, str(exc))
    if key in _surprises_seen:
        return None
    _surprises_seen.add(key)
    return exc
