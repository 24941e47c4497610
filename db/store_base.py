"""What the job store's parts share: the engine, the clock that stamps times, and transactions."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Connection, Engine, Row, Table
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from whisper_transcriber.db.clock import DatabaseClock, utcnow
from whisper_transcriber.db.driver_errors import is_unique_violation, translated
from whisper_transcriber.db.engine import SQLITE_BEGIN_OPTION, SQLITE_BEGIN_WAIT_OPTION
from whisper_transcriber.db.models import Job, TranscriptRow, TranscriptSegmentRow
from whisper_transcriber.db.values import JobRecord

JOBS = cast(Table, Job.__table__)
TRANSCRIPTS = cast(Table, TranscriptRow.__table__)
SEGMENTS = cast(Table, TranscriptSegmentRow.__table__)


def job_record(row: Row[Any]) -> JobRecord:
    return JobRecord.from_row(row._mapping)


def source_path_under(folder: str | os.PathLike[str], dialect: str) -> ColumnElement[bool]:
    """A job's source_path lies inside folder: a range in byte order instead of LIKE, which
    needs escaping and is case-blind on SQLite. PostgreSQL compares in the database's collation
    unless told "C" (byte order)."""
    prefix = str(folder).rstrip(os.sep) + os.sep
    upper = prefix[:-1] + chr(ord(os.sep) + 1)
    column: Any = JOBS.c.source_path
    if dialect == "postgresql":
        column = column.collate("C")
    under: ColumnElement[bool] = (column >= prefix) & (column < upper)
    return under


class StoreBase:
    """An engine with the store's clock and its read and write transactions (for db/ modules)."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] = utcnow,
        database_clock: bool | None = None,
    ) -> None:
        """clock: this machine's clock. Times are stamped and compared on the database's clock
        (this one plus its measured offset, db/clock.py) on PostgreSQL, so that instances whose
        clocks disagree neither lose nor steal leases. database_clock=None means: unless a test
        gave a clock of its own to move time, which is then used as it is."""
        self.engine = engine
        if database_clock is None:
            database_clock = clock is utcnow
        self.clock: Callable[[], datetime] = clock
        if database_clock and engine.dialect.name == "postgresql":
            self.clock = DatabaseClock(engine, clock)

    @contextmanager
    def _write(self, *, lock_wait_ms: int | None = None) -> Iterator[Connection]:
        """A write transaction; on SQLite it takes the write lock up front (BEGIN IMMEDIATE),
        waiting for it lock_wait_ms when given, else the engine's busy timeout."""
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
                if lock_wait_ms is not None:
                    conn.execution_options(**{SQLITE_BEGIN_WAIT_OPTION: lock_wait_ms})
                with conn.begin():
                    yield conn
        except IntegrityError as exc:
            if is_unique_violation(exc):
                raise  # the insert-once race: its caller reads the row the other writer made
            raise translated(exc) from exc
        except SQLAlchemyError as exc:
            raise translated(exc) from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A read transaction. Driver errors become DatabaseUnavailable (away, busy: worth
        waiting for) or DatabaseRefused (this statement is wrong: fail now); db/driver_errors.py."""
        try:
            with self.engine.connect() as conn, conn.begin():
                yield conn
        except SQLAlchemyError as exc:
            raise translated(exc) from exc


def of_models(names: Collection[str | None]) -> ColumnElement[bool]:
    """Jobs for one of these models (None: the default model)."""
    of_names: ColumnElement[bool] = JOBS.c.model.in_([name for name in names if name is not None])
    if None in names:
        of_names = of_names | JOBS.c.model.is_(None)
    return of_names
