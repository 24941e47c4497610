"""The worker registry: every worker process's row (who, where, which instance), its heartbeats,
and which workers are gone, as procrastinate's workers table.

A job's holder is known dead in two ways only: its row says it stopped, or it ran in this very
pid namespace of this kernel boot (the row's `machine`) and that process is gone. A hostname
and a pid prove nothing: two machines, or two containers, may share a hostname and reuse pids.
A holder on another machine that stops beating is left to its job's lease, as before.
"""

from __future__ import annotations

import enum
import os
import socket
from collections.abc import Callable, Collection, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, and_, delete, insert, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from whisper_transcriber.db.clock import DatabaseClock
from whisper_transcriber.db.driver_errors import translated
from whisper_transcriber.db.engine import SQLITE_BEGIN_OPTION
from whisper_transcriber.db.models import WorkerRow
from whisper_transcriber.db.process_identity import process_alive, process_start, this_machine

WORKER_HEARTBEAT_S = 5.0
# Six missed heartbeats: a worker that long silent is reported stale (`check` fails).
WORKER_STALE_AFTER_S = 30.0
# Rows of stopped workers are kept this long (history), then removed.
WORKER_FORGET_STOPPED_S = 24 * 3600.0
# A row silent this long is removed: a worker of a container since replaced (another pid
# namespace: nobody can prove it dead) or of a lost machine. One that beats again registers again.
WORKER_FORGET_SILENT_S = 3600.0

WORKERS = cast(Table, WorkerRow.__table__)


class WorkerRole(enum.StrEnum):
    """Whose pool a worker belongs to: a service's (`serve` with the work role), or one command's."""

    SERVICE = "service"
    COMMAND = "command"


class WorkerState(enum.StrEnum):
    STARTING = "starting"  # loading its model
    IDLE = "idle"
    BUSY = "busy"
    STOPPED = "stopped"


def instance_name(configured: str | None = None) -> str:
    return configured or socket.gethostname()


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class WorkerInfo:
    """A worker's row as read, with `stale` judged on the database's clock when it was read."""

    id: str
    instance: str
    role: str
    host: str
    machine: str | None
    pid: int
    pid_started: float
    state: WorkerState
    job_id: int | None
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    stale: bool
    heartbeat_age_s: float
    models: tuple[str, ...] = ()  # the models it holds loaded, by name, as of its heartbeat

    @property
    def live(self) -> bool:
        return self.stopped_at is None and not self.stale


class WorkerRegistry:
    """Every statement on the workers table; the jobs table is the job store's alone."""

    def __init__(
        self,
        engine: Engine,
        *,
        stale_after_s: float = WORKER_STALE_AFTER_S,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """clock: the job store's, where there is one (on PostgreSQL, the database's time, so
        that machines whose clocks disagree do not call each other stale)."""
        self.engine = engine
        self.stale_after = timedelta(seconds=stale_after_s)
        if clock is None:
            clock = DatabaseClock(engine) if engine.dialect.name == "postgresql" else _utcnow
        self.clock = clock

    @contextmanager
    def _connection(self, *, write: bool = True) -> Any:
        """A transaction; on SQLite a writing one takes the write lock up front (BEGIN
        IMMEDIATE), so that its first write never fails at once on another's commit."""
        try:
            with self.engine.connect() as conn:
                if write:
                    conn.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
                with conn.begin():
                    yield conn
        except SQLAlchemyError as exc:
            raise translated(exc) from exc

    # -- a worker's own rows ------------------------------------------------------------------

    def register(self, worker_id: str, instance: str, role: WorkerRole) -> None:
        """This process, as worker_id, starting (before its model is loaded)."""
        now = self.clock()
        pid = os.getpid()
        started = process_start(pid)
        with self._connection() as conn:
            conn.execute(delete(WORKERS).where(WORKERS.c.id == worker_id))
            conn.execute(
                insert(WORKERS).values(
                    id=worker_id,
                    instance=instance,
                    role=role.value,
                    host=socket.gethostname(),
                    machine=this_machine(),
                    pid=pid,
                    pid_started=started if started is not None else 0.0,
                    state=WorkerState.STARTING.value,
                    job_id=None,
                    started_at=now,
                    heartbeat_at=now,
                    stopped_at=None,
                )
            )

    def beat(
        self,
        worker_id: str,
        state: WorkerState,
        job_id: int | None,
        models: Sequence[str] | None = None,
    ) -> bool:
        """A heartbeat with what the worker does now (and the models it holds, when given);
        False when its row is gone (forgotten after a long silence): it registers again."""
        values: dict[str, Any] = {
            "heartbeat_at": self.clock(),
            "state": state.value,
            "job_id": job_id,
            "stopped_at": None,
        }
        if models is not None:
            values["models"] = list(models)
        with self._connection() as conn:
            result = conn.execute(update(WORKERS).where(WORKERS.c.id == worker_id).values(values))
        return bool(result.rowcount)

    def stopped(self, worker_id: str) -> None:
        with self._connection() as conn:
            self._mark_stopped(conn, [worker_id])

    def _mark_stopped(self, conn: Connection, worker_ids: Collection[str]) -> None:
        conn.execute(
            update(WORKERS)
            .where(WORKERS.c.id.in_(list(worker_ids)), WORKERS.c.stopped_at.is_(None))
            .values(
                stopped_at=self.clock(), state=WorkerState.STOPPED.value, job_id=None, models=None
            )
        )

    # -- everybody's rows ---------------------------------------------------------------------

    def workers(
        self, *, instance: str | None = None, include_stopped: bool = False
    ) -> list[WorkerInfo]:
        """Registered workers, oldest first; stale ones too (they may hold jobs)."""
        query = select(WORKERS).order_by(WORKERS.c.instance, WORKERS.c.started_at, WORKERS.c.id)
        if instance is not None:
            query = query.where(WORKERS.c.instance == instance)
        if not include_stopped:
            query = query.where(WORKERS.c.stopped_at.is_(None))
        with self._connection(write=False) as conn:
            rows = conn.execute(query).all()
        now = self.clock()
        return [self._info(row._mapping, now) for row in rows]

    def _info(self, row: Any, now: datetime) -> WorkerInfo:
        age = max((now - row["heartbeat_at"]).total_seconds(), 0.0)
        return WorkerInfo(
            id=row["id"],
            instance=row["instance"],
            role=row["role"],
            host=row["host"],
            machine=row["machine"],
            pid=row["pid"],
            pid_started=row["pid_started"],
            state=WorkerState(row["state"]),
            job_id=row["job_id"],
            started_at=row["started_at"],
            heartbeat_at=row["heartbeat_at"],
            stopped_at=row["stopped_at"],
            stale=row["stopped_at"] is None and age > self.stale_after.total_seconds(),
            heartbeat_age_s=age,
            models=tuple(row["models"] or ()),
        )

    def gone(self, worker_ids: Collection[str]) -> set[str]:
        """Those of worker_ids known to be gone: stopped, or dead processes of this machine.
        Ids not in the registry (an earlier version's workers) are not known: their jobs wait
        for their leases. The dead of this machine are marked stopped on the way."""
        if not worker_ids:
            return set()
        with self._connection() as conn:
            rows = conn.execute(
                select(
                    WORKERS.c.id,
                    WORKERS.c.machine,
                    WORKERS.c.pid,
                    WORKERS.c.pid_started,
                    WORKERS.c.stopped_at,
                ).where(WORKERS.c.id.in_(list(worker_ids)))
            ).all()
            here = this_machine()
            died = {
                row.id
                for row in rows
                if row.stopped_at is None
                and here is not None
                and row.machine == here
                and not process_alive(row.pid, row.pid_started)
            }
            if died:
                self._mark_stopped(conn, died)
        return died | {row.id for row in rows if row.stopped_at is not None}

    def mark_dead_here(self) -> int:
        """Rows of this machine whose processes are gone (a pool killed with -9) become stopped."""
        here = this_machine()
        if here is None:
            return 0
        with self._connection() as conn:
            rows = conn.execute(
                select(WORKERS.c.id, WORKERS.c.pid, WORKERS.c.pid_started).where(
                    WORKERS.c.machine == here, WORKERS.c.stopped_at.is_(None)
                )
            ).all()
            dead = [row.id for row in rows if not process_alive(row.pid, row.pid_started)]
            if dead:
                self._mark_stopped(conn, dead)
        return len(dead)

    def forget(
        self,
        stopped_for_s: float = WORKER_FORGET_STOPPED_S,
        silent_for_s: float = WORKER_FORGET_SILENT_S,
    ) -> int:
        """Removes the rows of workers stopped for stopped_for_s, or silent for silent_for_s."""
        now = self.clock()
        with self._connection() as conn:
            result = conn.execute(
                delete(WORKERS).where(
                    or_(
                        WORKERS.c.stopped_at < now - timedelta(seconds=stopped_for_s),
                        and_(
                            WORKERS.c.stopped_at.is_(None),
                            WORKERS.c.heartbeat_at < now - timedelta(seconds=silent_for_s),
                        ),
                    )
                )
            )
        return int(result.rowcount or 0)

    def tidy(self) -> int:
        """The periodic care: this machine's dead workers marked stopped, old rows removed."""
        return self.mark_dead_here() + self.forget()


def new_worker_token() -> str:
    """The part of a worker id that makes it unique (host and pid are reused)."""
    return os.urandom(4).hex()


def worker_id_for(token: str, pid: int) -> str:
    """host:token:pid; the pid last, as people read it from logs and job rows."""
    return f"{socket.gethostname()}:{token}:{pid}"
