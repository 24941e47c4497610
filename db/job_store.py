"""The job store: the one owner of every job state change (enqueue, claim, heartbeat, finish, ...)."""

from __future__ import annotations

import html
import os
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, Engine, Row, Table, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from whisper_transcriber.db.clock import DatabaseClock
from whisper_transcriber.db.driver_errors import is_unique_violation, translated
from whisper_transcriber.db.engine import SQLITE_BEGIN_OPTION, check_writable
from whisper_transcriber.db.errors import (
    InvalidTransition,
    JobNotFound,
    LeaseLost,
    check_storable,
)
from whisper_transcriber.db.identity import (
    CONTENT,
    UNKNOWN,
    FileVersion,
    Signals,
    file_version,
    file_work_key,
    options_key,
    sampled_fingerprint,
    upload_work_key,
    version_of_stat,
)
from whisper_transcriber.db.models import (
    InboxScanRow,
    Job,
    JobStatus,
    TranscriptRow,
    TranscriptSegmentRow,
)
from whisper_transcriber.db.values import (
    InboxScan,
    JobOptions,
    JobQuery,
    JobRecord,
    QueueStats,
    RetryPolicy,
    SearchHit,
    TranscriptSummary,
)
from whisper_transcriber.worker.transcript import Transcript

LEASE_S = 60.0
# PostgreSQL channel on which every newly due job is announced (NOTIFY is sent on commit).
NOTIFY_CHANNEL = "whisper_transcriber_jobs"
# First key of the advisory locks that serialise recording jobs of one source (PostgreSQL).
ENQUEUE_LOCK_SPACE = 74_062
DEFAULT_MAX_ATTEMPTS = 3
# Identity of a path that does not exist (yet): its job is recorded and fails with a readable reason.
MISSING_SIZE = UNKNOWN
# An upload sent again after its job failed or was cancelled asks for another try.
_ASKS_FOR_ANOTHER_TRY = (JobStatus.FAILED.value, JobStatus.CANCELLED.value)

JOBS = cast(Table, Job.__table__)
TRANSCRIPTS = cast(Table, TranscriptRow.__table__)
SEGMENTS = cast(Table, TranscriptSegmentRow.__table__)
INBOX_SCANS = cast(Table, InboxScanRow.__table__)
# Marks around the matched words in search snippets: private-use characters in SQL, so that the
# text can be HTML-escaped before they become <mark> and </mark>.
MATCH_START, MATCH_END = "\ue000", "\ue001"
SNIPPET_WORDS = 16


def _record(row: Row[Any]) -> JobRecord:
    return JobRecord.from_row(row._mapping)


def _marked(snippet: str) -> str:
    """HTML-safe text with the matches in <mark>...</mark>."""
    escaped = html.escape(snippet, quote=False)
    return escaped.replace(MATCH_START, "<mark>").replace(MATCH_END, "</mark>")


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobStore:
    """Every statement that changes a job lives here; callers get JobRecord values back."""

    def __init__(
        self,
        engine: Engine,
        *,
        lease_s: float = LEASE_S,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        retry_policy: RetryPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        database_clock: bool | None = None,
    ) -> None:
        """clock: this machine's clock. Times are stamped and compared on the database's clock
        (this one plus its measured offset, db/clock.py) on PostgreSQL, so that instances whose
        clocks disagree neither lose nor steal leases. database_clock=None means: unless a test
        gave a clock of its own to move time, which is then used as it is."""
        self.engine = engine
        self.lease = timedelta(seconds=lease_s)
        self.max_attempts = max_attempts
        self.retry_policy = retry_policy or RetryPolicy()
        if database_clock is None:
            database_clock = clock is utcnow
        self.clock: Callable[[], datetime] = clock
        if database_clock and engine.dialect.name == "postgresql":
            self.clock = DatabaseClock(engine, clock)
        self._wake_listeners: list[Callable[[], None]] = []

    # -- waking idle workers ------------------------------------------------------------------

    def add_wake_listener(self, listener: Callable[[], None]) -> None:
        """Called (in this process) after a job became due now: enqueue, retry, hand-back."""
        self._wake_listeners.append(listener)

    def remove_wake_listener(self, listener: Callable[[], None]) -> None:
        self._wake_listeners.remove(listener)

    def _announce(self, conn: Connection) -> None:
        """Tell other processes' listeners, on commit. SQLite has no such channel: they poll."""
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})

    def _wake(self) -> None:
        for listener in self._wake_listeners:
            listener()

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction; on SQLite it takes the write lock up front (BEGIN IMMEDIATE)."""
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
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

    @staticmethod
    def _locked_job(conn: Connection, job_id: int) -> Row[Any]:
        row = conn.execute(select(JOBS).where(JOBS.c.id == job_id).with_for_update()).first()
        if row is None:
            raise JobNotFound(job_id)
        return row

    # -- enqueue ------------------------------------------------------------------------------

    def enqueue(
        self,
        path: str | os.PathLike[str],
        options: JobOptions,
        origin: str,
        *,
        max_attempts: int | None = None,
        move_on_done: str | os.PathLike[str] | None = None,
        move_on_failure: str | os.PathLike[str] | None = None,
        force: bool = False,
        content_digest: str | None = None,
        any_options: bool = False,
    ) -> tuple[JobRecord, bool]:
        """Record a job for a file, unless the same work has one (created=False with that job).

        The same work is the same version of the file with the same effective options
        (db/identity.py). With content_digest (an upload's SHA-256), the version is the content
        and the file's name instead of its path, and an earlier job of it that failed or was
        cancelled does not count: a client that sends it again asks for another try. force always
        records a new job, which becomes the one later requests find. any_options (the watcher's
        way): a job of this version with other options counts as the same work, as a rescan
        sees it (a file transcribed through the API is not taken again by its inbox).
        move_on_done / move_on_failure: where the original goes once the job is done or has failed
        for good (see originals_to_move)."""
        version = file_version(path)
        check_storable(version.path)
        key_of_options = options_key(options)
        if content_digest is not None:
            key = upload_work_key(content_digest, Path(version.path).name, key_of_options)
            fingerprint: str | None = CONTENT + content_digest
        else:
            key = file_work_key(version, key_of_options)
            fingerprint = (
                sampled_fingerprint(version.path, version.size) if version.exists else None
            )
        now = self.clock()
        values = {
            "source_path": version.path,
            "source_size": version.size,
            "source_mtime_ns": version.mtime_ns,
            "source_inode": version.inode,
            "source_ctime_ns": version.ctime_ns,
            "source_fingerprint": fingerprint,
            "options_key": key_of_options,
            "dedupe_key": key,
            "origin": origin,
            "options": options.model_dump(mode="json"),
            "status": JobStatus.QUEUED.value,
            "attempts": 0,
            "max_attempts": max_attempts or self.max_attempts,
            "run_after": now,
            "progress": 0.0,
            "outputs": [],
            "created_at": now,
            "updated_at": now,
            "move_on_done": str(move_on_done) if move_on_done else None,
            "move_on_failure": str(move_on_failure) if move_on_failure else None,
        }

        def holder(conn: Connection) -> Row[Any] | None:
            existing = conn.execute(
                select(JOBS).where(JOBS.c.dedupe_key == key).with_for_update()
            ).first()
            if existing is None and content_digest is None and version.exists:
                existing = self._same_content(
                    conn, version, fingerprint, key_of_options, any_options
                )
            return existing

        def answers(existing: Row[Any]) -> bool:
            if force:
                return False
            return content_digest is None or existing.status not in _ASKS_FOR_ANOTHER_TRY

        def queued(conn: Connection, row: Row[Any]) -> None:
            self._supersede_queued(conn, version, row.id, now)
            self._announce(conn)

        job, created = self._insert_once(values, holder, answers, queued)
        if created:
            self._wake()
        return job, created

    def _same_content(
        self,
        conn: Connection,
        version: FileVersion,
        fingerprint: str | None,
        key_of_options: str,
        any_options: bool,
    ) -> Row[Any] | None:
        """The job of this work when its key did not find it: only the file's inode or ctime
        moved (a chmod, a new hard link, the same bytes copied into place), or the job was
        recorded before they were (migration 0007, or an instance not yet upgraded). The content
        decides. Every job of that content has its recorded version brought up to date, so that
        rescans stay quiet; the newest with these options is the answer, or with any_options
        the newest of any options."""
        candidates = conn.execute(
            select(JOBS)
            .where(
                JOBS.c.source_path == version.path,
                JOBS.c.source_size == version.size,
                JOBS.c.source_mtime_ns == version.mtime_ns,
                JOBS.c.dedupe_key.is_not(None) | (JOBS.c.source_inode == UNKNOWN),
            )
            .order_by(JOBS.c.id)
            .with_for_update()
        ).all()
        same_options = other_options = None
        for row in candidates:
            exact = (row.source_inode, row.source_ctime_ns) == (version.inode, version.ctime_ns)
            same_bytes = fingerprint is not None and row.source_fingerprint == fingerprint
            if not (exact or same_bytes or row.source_inode == UNKNOWN):
                continue
            now_key = file_work_key(version, row.options_key)
            held_by = conn.execute(select(JOBS.c.id).where(JOBS.c.dedupe_key == now_key)).scalar()
            if held_by is None:
                row = conn.execute(
                    update(JOBS)
                    .where(JOBS.c.id == row.id)
                    .values(
                        source_inode=version.inode,
                        source_ctime_ns=version.ctime_ns,
                        source_fingerprint=row.source_fingerprint or fingerprint,
                        dedupe_key=now_key,
                    )
                    .returning(*JOBS.c)
                ).one()
            elif held_by != row.id:
                continue  # that work already has a job of the file as it is now
            if row.options_key == key_of_options:
                same_options = row
            else:
                other_options = row
        return same_options or (other_options if any_options else None)

    def _insert_once(
        self,
        values: dict[str, Any],
        holder: Callable[[Connection], Row[Any] | None],
        answers: Callable[[Row[Any]], bool] = lambda _existing: True,
        then: Callable[[Connection, Row[Any]], None] | None = None,
    ) -> tuple[JobRecord, bool]:
        """Insert the job unless the work's current job (`holder`, locked) answers for it
        (created=False); one that does not (force, a failed upload sent again) hands the work's
        key over to the new job. `then` runs in the same transaction after an insert."""
        key = values["dedupe_key"]
        try:
            with self._write() as conn:
                if conn.dialect.name == "postgresql":
                    # Recorders of one source take turns (SQLite's BEGIN IMMEDIATE does that
                    # already): its rows are then locked in one order, and a forced run never
                    # races another recorder into the fallback below.
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:space, hashtext(:source))"),
                        {"space": ENQUEUE_LOCK_SPACE, "source": values["source_path"]},
                    )
                existing = holder(conn)
                if existing is not None:
                    if answers(existing):
                        return _record(existing), False
                    # By id: a job that another process recorded meanwhile keeps its key, and
                    # our insert then fails on it (below) instead of making a second job.
                    conn.execute(
                        update(JOBS).where(JOBS.c.id == existing.id).values(dedupe_key=None)
                    )
                row = conn.execute(insert(JOBS).values(values).returning(*JOBS.c)).one()
                if then is not None:
                    then(conn, row)
            return _record(row), True
        except IntegrityError:
            # Another process recorded the same work between our check and our insert.
            with self._read() as conn:
                return _record(
                    conn.execute(select(JOBS).where(JOBS.c.dedupe_key == key)).one()
                ), False

    def refuse(
        self, path: str | os.PathLike[str], options: JobOptions, origin: str, reason: str
    ) -> tuple[JobRecord, bool]:
        """Record a job that fails at once without being run (a link out of the allowed folders):
        the path as given (not followed), with the link's own version, so that the same link is
        refused once and a changed one again. created=False when it already was."""
        link = os.fspath(path)
        version = version_of_stat(link, os.lstat(link))
        key_of_options = options_key(options)
        key = file_work_key(version, key_of_options)
        now = self.clock()
        values = {
            "source_path": link,
            "source_size": version.size,
            "source_mtime_ns": version.mtime_ns,
            "source_inode": version.inode,
            "source_ctime_ns": version.ctime_ns,
            "source_fingerprint": None,
            "options_key": key_of_options,
            "dedupe_key": key,
            "origin": origin,
            "options": options.model_dump(mode="json"),
            "status": JobStatus.FAILED.value,
            "attempts": 0,
            "max_attempts": self.max_attempts,
            "run_after": now,
            "progress": 0.0,
            "error": reason,
            "outputs": [],
            "created_at": now,
            "finished_at": now,
            "updated_at": now,
        }
        return self._insert_once(
            values, lambda conn: conn.execute(select(JOBS).where(JOBS.c.dedupe_key == key)).first()
        )

    @staticmethod
    def _supersede_queued(
        conn: Connection, version: FileVersion, newer_id: int, now: datetime
    ) -> None:
        """Queued jobs of other versions of the file would only fail: cancel them, saying why.
        (A running one finds out itself, before it publishes anything.)"""
        same_version = (
            (JOBS.c.source_size == version.size)
            & (JOBS.c.source_mtime_ns == version.mtime_ns)
            & (
                (JOBS.c.source_inode == UNKNOWN)
                | (
                    (JOBS.c.source_inode == version.inode)
                    & (JOBS.c.source_ctime_ns == version.ctime_ns)
                )
            )
        )
        conn.execute(
            update(JOBS)
            .where(
                JOBS.c.source_path == version.path,
                JOBS.c.status == JobStatus.QUEUED.value,
                JOBS.c.id != newer_id,
                ~same_version,
            )
            .values(
                status=JobStatus.CANCELLED.value,
                note=f"superseded by job {newer_id}: the file changed",
                finished_at=now,
                updated_at=now,
            )
        )

    # -- the worker's side --------------------------------------------------------------------

    def claim(self, worker_id: str) -> JobRecord | None:
        """Take the oldest due job with a lease, or None. The attempt number is its fencing token."""
        now = self.clock()
        due = (
            select(JOBS.c.id)
            .where(JOBS.c.status == JobStatus.QUEUED.value, JOBS.c.run_after <= now)
            .order_by(JOBS.c.run_after, JOBS.c.id)
            .limit(1)
            # PostgreSQL: concurrent claimers skip each other's rows. SQLite renders no FOR UPDATE;
            # there BEGIN IMMEDIATE (see _write) serialises claimers instead.
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        claim = (
            update(JOBS)
            .where(JOBS.c.id == due, JOBS.c.status == JobStatus.QUEUED.value)
            .values(
                status=JobStatus.RUNNING.value,
                attempts=JOBS.c.attempts + 1,
                worker_id=worker_id,
                lease_expires_at=now + self.lease,
                progress=0.0,
                started_at=now,
                finished_at=None,
                updated_at=now,
            )
            .returning(*JOBS.c)
        )
        with self._write() as conn:
            row = conn.execute(claim).first()
        return _record(row) if row is not None else None

    def heartbeat(self, job_id: int, attempt: int, progress: float | None = None) -> bool:
        """Extend the lease (and record progress); False when the attempt is no longer current."""
        now = self.clock()
        values: dict[str, Any] = {"lease_expires_at": now + self.lease, "updated_at": now}
        if progress is not None:
            values["progress"] = min(max(progress, 0.0), 1.0)
        with self._write() as conn:
            result = conn.execute(
                update(JOBS)
                .where(
                    JOBS.c.id == job_id,
                    JOBS.c.attempts == attempt,
                    JOBS.c.status == JobStatus.RUNNING.value,
                )
                .values(values)
            )
        return result.rowcount == 1

    def complete(
        self,
        job_id: int,
        attempt: int,
        transcript: Transcript,
        publish: Callable[[], Sequence[str | os.PathLike[str]]] = tuple,
        note: str | None = None,
    ) -> JobRecord:
        """Mark the job done and store its transcript, fenced by the attempt.

        `publish` makes the output files visible (renames them into place). It runs while this
        attempt holds the job's row, so a worker that lost its lease never overwrites a file either.
        `note`: why some outputs were not written (a sidecar name another file holds).
        """
        now = self.clock()
        with self._write() as conn:
            row = self._current_attempt(conn, job_id, attempt)
            conn.execute(delete(TRANSCRIPTS).where(TRANSCRIPTS.c.job_id == job_id))
            conn.execute(delete(SEGMENTS).where(SEGMENTS.c.job_id == job_id))
            if transcript.segments:
                conn.execute(
                    insert(SEGMENTS),
                    [
                        {
                            "job_id": job_id,
                            "position": position,
                            "start": segment.start,
                            "end": segment.end,
                            "text": segment.text.strip(),
                        }
                        for position, segment in enumerate(transcript.segments)
                    ],
                )
            conn.execute(
                insert(TRANSCRIPTS).values(
                    job_id=job_id,
                    language=transcript.language,
                    language_probability=transcript.language_probability,
                    duration=transcript.duration,
                    text=transcript.text,
                    segments=transcript.segments_as_dicts(),
                    created_at=now,
                    processing_s=(now - row.started_at).total_seconds() if row.started_at else None,
                )
            )
            # Last, so that a transcript the database refuses publishes no file either.
            outputs = [str(p) for p in publish()]
            return self._mark_done(conn, row.id, outputs, note=note, now=now)

    def skip(self, job_id: int, attempt: int, note: str, outputs: Sequence[str] = ()) -> JobRecord:
        """Finish the job as done without a transcript of ours (the result already existed)."""
        with self._write() as conn:
            row = self._current_attempt(conn, job_id, attempt)
            return self._mark_done(conn, row.id, [str(p) for p in outputs], note, self.clock())

    @staticmethod
    def _mark_done(
        conn: Connection, job_id: int, outputs: list[str], note: str | None, now: datetime
    ) -> JobRecord:
        row = conn.execute(
            update(JOBS)
            .where(JOBS.c.id == job_id)
            .values(
                status=JobStatus.DONE.value,
                progress=1.0,
                error=None,
                note=note,
                outputs=outputs,
                worker_id=None,
                lease_expires_at=None,
                finished_at=now,
                updated_at=now,
            )
            .returning(*JOBS.c)
        ).one()
        return _record(row)

    def fail(self, job_id: int, attempt: int, error: str, *, retryable: bool = True) -> JobRecord:
        """Record a failed attempt: back to the queue after a backoff, or failed for good."""
        with self._write() as conn:
            row = self._current_attempt(conn, job_id, attempt)
            return self._record_failure(conn, row, error, retryable=retryable)

    def release(self, job_id: int, attempt: int) -> JobRecord:
        """Hand a running job back untouched (shutdown): queued again, due now."""
        now = self.clock()
        with self._write() as conn:
            row = self._current_attempt(conn, job_id, attempt)
            row = conn.execute(
                update(JOBS)
                .where(JOBS.c.id == row.id)
                # A handed-back attempt is not a failed one: it does not use up the allowance.
                .values(
                    status=JobStatus.QUEUED.value,
                    max_attempts=JOBS.c.max_attempts + 1,
                    run_after=now,
                    worker_id=None,
                    lease_expires_at=None,
                    progress=0.0,
                    updated_at=now,
                )
                .returning(*JOBS.c)
            ).one()
            self._announce(conn)
        self._wake()
        return _record(row)

    def _current_attempt(self, conn: Connection, job_id: int, attempt: int) -> Row[Any]:
        row = self._locked_job(conn, job_id)
        if row.attempts != attempt or row.status != JobStatus.RUNNING.value:
            raise LeaseLost(job_id, attempt)
        return row

    def _record_failure(
        self, conn: Connection, row: Row[Any], error: str, *, retryable: bool
    ) -> JobRecord:
        now = self.clock()
        next_run = (
            self.retry_policy.next_run(row.attempts, row.max_attempts, now) if retryable else None
        )
        values: dict[str, Any] = {
            "error": error,
            "worker_id": None,
            "lease_expires_at": None,
            "updated_at": now,
        }
        if next_run is None:
            values.update(status=JobStatus.FAILED.value, finished_at=now)
        else:
            values.update(status=JobStatus.QUEUED.value, run_after=next_run, progress=0.0)
        updated = conn.execute(
            update(JOBS).where(JOBS.c.id == row.id).values(values).returning(*JOBS.c)
        ).one()
        return _record(updated)

    # -- operators and the scheduler ----------------------------------------------------------

    def recover_expired(self) -> list[JobRecord]:
        """Running jobs whose lease ran out (worker or machine gone): a failed attempt each."""
        now = self.clock()
        with self._write() as conn:
            expired = conn.execute(
                select(JOBS)
                .where(
                    JOBS.c.status == JobStatus.RUNNING.value,
                    JOBS.c.lease_expires_at < now,
                )
                .order_by(JOBS.c.id)
                .with_for_update(skip_locked=True)
            ).all()
            recovered = [
                self._record_failure(
                    conn,
                    row,
                    f"lease expired: worker {row.worker_id} stopped answering",
                    retryable=True,
                )
                for row in expired
            ]
            if recovered:
                self._announce(conn)
        if recovered:
            self._wake()  # idle workers learn when the retry is due
        return recovered

    def cancel(self, job_id: int) -> JobRecord:
        """Cancel a queued or running job; a running worker sees it at its next heartbeat."""
        now = self.clock()
        with self._write() as conn:
            row = self._locked_job(conn, job_id)
            if row.status == JobStatus.CANCELLED.value:
                return _record(row)
            if row.status not in (JobStatus.QUEUED.value, JobStatus.RUNNING.value):
                raise InvalidTransition(
                    f"job {job_id} is {row.status}; only queued or running jobs can be cancelled"
                )
            row = conn.execute(
                update(JOBS)
                .where(JOBS.c.id == job_id)
                .values(
                    status=JobStatus.CANCELLED.value,
                    worker_id=None,
                    lease_expires_at=None,
                    finished_at=now,
                    updated_at=now,
                )
                .returning(*JOBS.c)
            ).one()
        return _record(row)

    def retry(self, job_id: int) -> JobRecord:
        """Queue a failed or cancelled job again, with a fresh allowance of attempts."""
        now = self.clock()
        with self._write() as conn:
            row = self._locked_job(conn, job_id)
            if row.status not in (JobStatus.FAILED.value, JobStatus.CANCELLED.value):
                raise InvalidTransition(
                    f"job {job_id} is {row.status}; only failed or cancelled jobs can be retried"
                )
            if row.source_removed_at is not None:  # marked under this row's lock (db/retention.py)
                raise InvalidTransition(
                    f"job {job_id}'s uploaded file was removed by the retention; upload it again"
                )
            row = conn.execute(
                update(JOBS)
                .where(JOBS.c.id == job_id)
                .values(
                    status=JobStatus.QUEUED.value,
                    # Attempts keep counting (they fence late workers); the allowance starts over.
                    max_attempts=row.attempts + self.max_attempts,
                    run_after=now,
                    error=None,
                    note=None,
                    progress=0.0,
                    finished_at=None,
                    original_moved_to=None,
                    updated_at=now,
                )
                .returning(*JOBS.c)
            ).one()
            self._announce(conn)
        self._wake()
        return _record(row)

    def run_again(self, job_id: int) -> JobRecord:
        """A new job of an ended job's source and options (the dashboard's "Run again", as a
        forced submit): the file as it is now, where it is now (done/ if its original moved)."""
        job = self.get(job_id)
        if not job.status.is_final:
            raise InvalidTransition(f"job {job_id} is {job.status.value}; it has not ended yet")
        if job.source_removed_at is not None:
            raise InvalidTransition(
                f"job {job_id}'s uploaded file was removed by the retention; upload it again"
            )
        path, moves = job.source_path, (job.move_on_done, job.move_on_failure)
        if job.original_moved_to and not os.path.lexists(path):
            path, moves = job.original_moved_to, (None, None)
        fingerprint = job.source_fingerprint or ""
        digest = fingerprint.removeprefix(CONTENT) if fingerprint.startswith(CONTENT) else None
        new, _ = self.enqueue(
            path,
            job.options,
            job.origin,
            move_on_done=moves[0],
            move_on_failure=moves[1],
            force=True,
            content_digest=digest,
        )
        return new

    # -- originals of inbox jobs ----------------------------------------------------------------

    def originals_to_move(self, ended_before: datetime, limit: int = 100) -> list[JobRecord]:
        """Jobs ended before a time whose original should have moved (to done/ or failed/) and
        has not yet; the least recently tried first."""
        waiting = ((JOBS.c.status == JobStatus.DONE.value) & JOBS.c.move_on_done.is_not(None)) | (
            (JOBS.c.status == JobStatus.FAILED.value) & JOBS.c.move_on_failure.is_not(None)
        )
        query = (
            select(JOBS)
            .where(waiting, JOBS.c.original_moved_to.is_(None), JOBS.c.finished_at < ended_before)
            .order_by(JOBS.c.updated_at, JOBS.c.id)
            .limit(limit)
        )
        with self._read() as conn:
            return [_record(row) for row in conn.execute(query)]

    def original_moved(self, job_id: int, destination: str | os.PathLike[str]) -> None:
        with self._write() as conn:
            conn.execute(
                update(JOBS)
                .where(JOBS.c.id == job_id)
                .values(original_moved_to=str(destination), updated_at=self.clock())
            )

    def original_move_failed(self, job_id: int) -> None:
        """Remember the try (updated_at), so that moves that keep failing do not block others."""
        with self._write() as conn:
            conn.execute(update(JOBS).where(JOBS.c.id == job_id).values(updated_at=self.clock()))

    def outputs_of_source(self, source_path: str) -> frozenset[str]:
        """Files this service wrote for a source, by any of its jobs (skips, which point at a
        subtitle someone else made, do not count), also by jobs whose original was moved to that
        path (a run again in done/): the only files its next run may replace."""
        query = (
            select(JOBS.c.outputs)
            .join(TRANSCRIPTS, TRANSCRIPTS.c.job_id == JOBS.c.id)
            .where((JOBS.c.source_path == source_path) | (JOBS.c.original_moved_to == source_path))
        )
        with self._read() as conn:
            return frozenset(path for (outputs,) in conn.execute(query) for path in outputs or ())

    def known_files(self, folder: str | os.PathLike[str]) -> dict[str, set[Signals]]:
        """Every recorded version (size, mtime_ns, inode, ctime_ns) with a job, by path, for the
        files under a folder: one query, so that a rescan of a large tree costs no statement per
        file. Compare with db.identity.is_recorded."""
        prefix = str(folder).rstrip(os.sep) + os.sep
        # A range in byte order instead of LIKE, which needs escaping and is case-blind on SQLite.
        # PostgreSQL compares in the database's collation unless told "C" (byte order).
        upper = prefix[:-1] + chr(ord(os.sep) + 1)
        path_column: Any = JOBS.c.source_path
        if self.engine.dialect.name == "postgresql":
            path_column = path_column.collate("C")
        # A failed job whose original was moved away does not know a file at its old path: a file
        # there now was put back from failed/, and the intake queues it again.
        stayed = (
            JOBS.c.original_moved_to.is_(None)
            | (JOBS.c.original_moved_to == "")
            | (JOBS.c.status != JobStatus.FAILED.value)
        )
        query = select(
            JOBS.c.source_path,
            JOBS.c.source_size,
            JOBS.c.source_mtime_ns,
            JOBS.c.source_inode,
            JOBS.c.source_ctime_ns,
        ).where(path_column >= prefix, path_column < upper, stayed)
        known: dict[str, set[Signals]] = {}
        with self._read() as conn:
            for path, *signals in conn.execute(query):
                known.setdefault(path, set()).add(tuple(signals))
        return known

    # -- inbox scans --------------------------------------------------------------------------

    def record_inbox_scan(self, scan: InboxScan) -> None:
        """Keep an inbox's latest scan (one row per name, overwritten)."""
        values = asdict(scan)
        by_name = update(INBOX_SCANS).where(INBOX_SCANS.c.name == scan.name).values(values)
        try:
            with self._write() as conn:
                if conn.execute(by_name).rowcount == 0:
                    conn.execute(insert(INBOX_SCANS).values(values))
        except IntegrityError:
            # Another watcher of that inbox recorded its first scan between our update and insert.
            with self._write() as conn:
                conn.execute(by_name)

    def inbox_scans(self) -> list[InboxScan]:
        """Every inbox's latest scan by name, inboxes no longer configured included."""
        with self._read() as conn:
            rows = conn.execute(select(INBOX_SCANS).order_by(INBOX_SCANS.c.name))
            return [InboxScan(**row._mapping) for row in rows]

    # -- queries ------------------------------------------------------------------------------

    def get(self, job_id: int) -> JobRecord:
        with self._read() as conn:
            row = conn.execute(select(JOBS).where(JOBS.c.id == job_id)).first()
        if row is None:
            raise JobNotFound(job_id)
        return _record(row)

    def get_many(self, job_ids: Sequence[int]) -> list[JobRecord]:
        with self._read() as conn:
            rows = conn.execute(select(JOBS).where(JOBS.c.id.in_(job_ids)).order_by(JOBS.c.id))
            return [_record(row) for row in rows]

    def running(self) -> list[JobRecord]:
        query = select(JOBS).where(JOBS.c.status == JobStatus.RUNNING.value).order_by(JOBS.c.id)
        with self._read() as conn:
            return [_record(row) for row in conn.execute(query)]

    def next_due(self) -> datetime | None:
        """When the earliest queued job becomes due (now or later); None when none is queued."""
        query = (
            select(JOBS.c.run_after)
            .where(JOBS.c.status == JobStatus.QUEUED.value)
            .order_by(JOBS.c.run_after)
            .limit(1)
        )
        with self._read() as conn:
            due: datetime | None = conn.execute(query).scalar()
        return due

    def list_jobs(self, query: JobQuery, limit: int) -> list[JobRecord]:
        """Jobs matching the query, newest first, at most `limit`."""
        if any("\x00" in (value or "") for value in (query.origin, query.text, query.path)):
            return []  # no stored text holds a NUL (PostgreSQL cannot even compare one)
        statement = select(JOBS).order_by(JOBS.c.id.desc()).limit(limit)
        if query.status is not None:
            statement = statement.where(JOBS.c.status == query.status.value)
        if query.origin is not None:
            statement = statement.where(JOBS.c.origin == query.origin)
        if query.since is not None:
            statement = statement.where(JOBS.c.created_at >= query.since)
        if query.until is not None:
            statement = statement.where(JOBS.c.created_at < query.until)
        if query.before_id is not None:
            statement = statement.where(JOBS.c.id < query.before_id)
        if query.path:
            statement = statement.where(JOBS.c.source_path.icontains(query.path, autoescape=True))
        if query.text:
            in_transcript = (
                select(TRANSCRIPTS.c.id)
                .where(
                    TRANSCRIPTS.c.job_id == JOBS.c.id,
                    TRANSCRIPTS.c.text.icontains(query.text, autoescape=True),
                )
                .exists()
            )
            statement = statement.where(
                JOBS.c.source_path.icontains(query.text, autoescape=True) | in_transcript
            )
        with self._read() as conn:
            return [_record(row) for row in conn.execute(statement)]

    def transcript_summaries(self, job_ids: Sequence[int]) -> dict[int, TranscriptSummary]:
        """Language and duration of the jobs' transcripts, for listings (no segments read)."""
        if not job_ids:
            return {}
        query = select(TRANSCRIPTS.c.job_id, TRANSCRIPTS.c.language, TRANSCRIPTS.c.duration).where(
            TRANSCRIPTS.c.job_id.in_(job_ids)
        )
        with self._read() as conn:
            return {
                job_id: TranscriptSummary(language, duration)
                for job_id, language, duration in conn.execute(query)
            }

    def changed_since(
        self, moment: datetime, after_id: int | None = None, limit: int = 500
    ) -> list[JobRecord]:
        """Jobs updated at or after a moment (with after_id: after that job at that moment),
        oldest change first: the change feed's query, paged by (updated_at, id)."""
        if after_id is None:
            newer = JOBS.c.updated_at >= moment
        else:
            newer = (JOBS.c.updated_at > moment) | (
                (JOBS.c.updated_at == moment) & (JOBS.c.id > after_id)
            )
        query = select(JOBS).where(newer).order_by(JOBS.c.updated_at, JOBS.c.id).limit(limit)
        with self._read() as conn:
            return [_record(row) for row in conn.execute(query)]

    def is_current(self, job_id: int, attempt: int) -> bool:
        """Whether this attempt still holds the job (not cancelled, not taken over)."""
        query = select(JOBS.c.id).where(
            JOBS.c.id == job_id,
            JOBS.c.attempts == attempt,
            JOBS.c.status == JobStatus.RUNNING.value,
        )
        with self._read() as conn:
            return conn.execute(query).first() is not None

    def search(self, query: str, limit: int = 20, offset: int = 0) -> list[SearchHit]:
        """Transcript segments matching every word of the query, best first, with a snippet
        whose matches are marked. FTS5 on SQLite, a tsvector and its GIN index on PostgreSQL."""
        # Control characters (NUL above all) mean nothing in speech and break both engines' parsers.
        query = "".join(" " if unicodedata.category(c) == "Cc" else c for c in query)
        words = query.split()
        if not words:
            return []
        if self.engine.dialect.name == "postgresql":
            statement = text(
                'SELECT s.job_id, s.start, s."end", '
                "ts_headline('simple', s.text, q, :options) AS snippet, "
                "ts_rank(s.search_vector, q) AS rank "
                "FROM transcript_segments s, plainto_tsquery('simple', :query) q "
                "WHERE s.search_vector @@ q "
                "ORDER BY rank DESC, s.job_id DESC, s.position LIMIT :limit OFFSET :offset"
            )
            options = f"StartSel={MATCH_START}, StopSel={MATCH_END}, MaxWords={SNIPPET_WORDS}"
            params: dict[str, object] = {"query": query, "options": options}
        else:
            statement = text(
                'SELECT s.job_id, s.start, s."end", '
                "snippet(transcript_segments_fts, 0, :mark_start, :mark_end, '…', :words) "
                "AS snippet, -bm25(transcript_segments_fts) AS rank "
                "FROM transcript_segments_fts JOIN transcript_segments s "
                "ON s.id = transcript_segments_fts.rowid "
                "WHERE transcript_segments_fts MATCH :query "
                "ORDER BY rank DESC, s.job_id DESC, s.position LIMIT :limit OFFSET :offset"
            )
            # Every word as a quoted phrase: the user's text is never FTS5 syntax.
            quoted = " ".join('"' + word.replace('"', '""') + '"' for word in words)
            params = {
                "query": quoted,
                "mark_start": MATCH_START,
                "mark_end": MATCH_END,
                "words": SNIPPET_WORDS,
            }
        with self._read() as conn:
            rows = conn.execute(statement, {**params, "limit": limit, "offset": offset}).all()
        return [
            SearchHit(
                job_id=r.job_id, start=r.start, end=r.end, snippet=_marked(r.snippet), rank=r.rank
            )
            for r in rows
        ]

    def stats(self) -> QueueStats:
        """Counts and totals for metrics: a few aggregate queries, whatever the history's size."""
        now = self.clock()
        by_status = select(JOBS.c.status, func.count()).group_by(JOBS.c.status)
        due = select(func.count()).where(
            JOBS.c.status == JobStatus.QUEUED.value, JOBS.c.run_after <= now
        )
        totals = select(
            func.coalesce(func.sum(TRANSCRIPTS.c.duration), 0.0),
            func.coalesce(func.sum(TRANSCRIPTS.c.processing_s), 0.0),
        )
        with self._read() as conn:
            counts = {JobStatus(status): count for status, count in conn.execute(by_status)}
            queue_depth = conn.execute(due).scalar_one()
            audio_s, processing_s = conn.execute(totals).one()
        return QueueStats(
            jobs={status: counts.get(status, 0) for status in JobStatus},
            queue_depth=queue_depth,
            audio_s=float(audio_s),
            processing_s=float(processing_s),
        )

    def ping(self) -> None:
        """Whether the database answers and takes writes: DatabaseUnavailable when it cannot be
        reached (or its SQLite file was deleted or replaced), DatabaseReadOnly when it refuses
        writes; a probe that changes nothing and waits for no lock (db/engine.py)."""
        with self._read() as conn:
            conn.execute(text("SELECT 1"))
            check_writable(conn)

    def recent(self, limit: int = 20, status: JobStatus | None = None) -> list[JobRecord]:
        query = select(JOBS).order_by(JOBS.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(JOBS.c.status == status.value)
        with self._read() as conn:
            return [_record(row) for row in conn.execute(query)]

    def transcript(self, job_id: int) -> Transcript | None:
        with self._read() as conn:
            row = conn.execute(select(TRANSCRIPTS).where(TRANSCRIPTS.c.job_id == job_id)).first()
        if row is None:
            return None
        return Transcript.from_dict(
            {
                "language": row.language,
                "language_probability": row.language_probability,
                "duration": row.duration,
                "segments": row.segments,
            }
        )
