"""The job store: the one owner of every job state change (enqueue, claim, heartbeat, finish, ...).

It reads as JobQueries does (db/job_queries.py); the steps that record a job once per piece of work
are db/enqueue.py's, called only from here. Somewhat over the ~400 lines of a module on purpose:
every transition of a job in one class, so that they are read and reviewed side by side.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    Select,
    delete,
    insert,
    select,
    update,
)

from whisper_transcriber.db.announcements import announce
from whisper_transcriber.db.clock import utcnow
from whisper_transcriber.db.enqueue import Work, insert_once, supersede_queued
from whisper_transcriber.db.errors import InvalidTransition, JobNotFound, LeaseLost
from whisper_transcriber.db.identity import CONTENT
from whisper_transcriber.db.job_queries import JobQueries
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.store_base import JOBS, SEGMENTS, TRANSCRIPTS, job_record, of_models
from whisper_transcriber.db.transcript import Transcript
from whisper_transcriber.db.values import JobOptions, JobRecord, RetryPolicy
from whisper_transcriber.db.webhook_outbox import (
    CALLBACKS,
    CallbackRequest,
    insert_callback,
    record_event,
    signal_sender,
)

LEASE_S = 60.0
# A job due this long is claimed in turn whatever model it needs (see claim).
MODEL_PREFERENCE_S = 60.0
DEFAULT_MAX_ATTEMPTS = 3
# An upload sent again after its job failed or was cancelled asks for another try.
_ASKS_FOR_ANOTHER_TRY = (JobStatus.FAILED.value, JobStatus.CANCELLED.value)


def _incomplete(conn: Connection, job_id: int) -> bool:
    """The job's transcript lacks something its job asked for (speaker labels)."""
    query = select(TRANSCRIPTS.c.incomplete).where(TRANSCRIPTS.c.job_id == job_id)
    return bool(conn.scalar(query))


def _drop_pieces(conn: Connection, job_id: int) -> None:
    """Remove the pieces of a job that has ended, with their transcripts (by the foreign keys'
    cascade): done, they are in its own; failed or cancelled, a retry splits the file again."""
    conn.execute(delete(JOBS).where(JOBS.c.parent_id == job_id))


def _same_callback(known: dict[str, Any] | None, asked: dict[str, Any] | None) -> bool:
    """Of one URL: the same callback, or a media server's refresh of the job's file (one per
    server, whichever item id a notification named)."""
    if known is None or asked is None:
        return known is asked
    return bool(known.get("server") == asked.get("server"))


def _a_piece(job_id: int, parent_id: int) -> InvalidTransition:
    """Pieces of a split file come and go with it (worker/split_files.py)."""
    return InvalidTransition(
        f"job {job_id} is a piece of job {parent_id}'s file; cancel, retry or run job "
        f"{parent_id} again instead"
    )


def _upload_removed(job_id: int) -> InvalidTransition:
    return InvalidTransition(
        f"job {job_id}'s uploaded file was removed by the retention; upload it again"
    )


class JobStore(JobQueries):
    """Every statement that changes a job lives here (or in db/enqueue.py, called from here);
    callers get JobRecord values back."""

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
        """clock, database_clock: which clock stamps and compares times (db/store_base.py)."""
        super().__init__(engine, clock=clock, database_clock=database_clock)
        self.lease = timedelta(seconds=lease_s)
        self.max_attempts = max_attempts
        self.retry_policy = retry_policy or RetryPolicy()
        self._wake_listeners: list[Callable[[], None]] = []

    # -- waking idle workers ------------------------------------------------------------------

    def add_wake_listener(self, listener: Callable[[], None]) -> None:
        """Called (in this process) after a job became due now: enqueue, retry, hand-back."""
        self._wake_listeners.append(listener)

    def remove_wake_listener(self, listener: Callable[[], None]) -> None:
        self._wake_listeners.remove(listener)

    def _wake(self) -> None:
        for listener in self._wake_listeners:
            listener()

    # -- rows locked for a change ---------------------------------------------------------------

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
        callback: CallbackRequest | None = None,
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
        for good (see originals_to_move). callback: the request's webhook for the job's events,
        whichever job answers (see subscribe)."""
        work = Work.of_file(path, options, content_digest)
        now = self.clock()
        values = work.row(
            origin,
            max_attempts or self.max_attempts,
            now,
            move_on_done=str(move_on_done) if move_on_done else None,
            move_on_failure=str(move_on_failure) if move_on_failure else None,
        )

        def answers(conn: Connection, existing: Row[Any]) -> bool:
            if force:
                return False
            if content_digest is not None and existing.status in _ASKS_FOR_ANOTHER_TRY:
                return False
            # A request for work whose transcript lacks what was asked (speaker labels that
            # could not be made) asks for another try; a rescan does not, or it would loop.
            return any_options or not _incomplete(conn, existing.id)

        def queued(conn: Connection, row: Row[Any]) -> None:
            supersede_queued(conn, work.version, row.id, now)
            if callback is not None:
                insert_callback(conn, row.id, callback, now)
            record_event(conn, row, "queued", now)
            announce(conn)

        job, created = insert_once(
            self, values, lambda conn: work.current_job(conn, any_options), answers, queued
        )
        if created:
            self._wake()
        elif callback is not None:
            self.subscribe(job.id, callback)
        return job, created

    def refuse(
        self, path: str | os.PathLike[str], options: JobOptions, origin: str, reason: str
    ) -> tuple[JobRecord, bool]:
        """Record a job that fails at once without being run (a link out of the allowed folders):
        the path as given (not followed), with the link's own version, so that the same link is
        refused once and a changed one again. created=False when it already was."""
        work = Work.of_link(path, options)
        now = self.clock()
        failed = {"status": JobStatus.FAILED.value, "error": reason, "finished_at": now}
        return insert_once(
            self,
            work.row(origin, self.max_attempts, now, **failed),
            work.keyed_job,
            then=lambda conn, row: record_event(conn, row, "failed", now),
        )

    def subscribe(self, job_id: int, callback: CallbackRequest) -> None:
        """A request's callback for a job that already was (the same work asked for again): its
        later events, or at once the end it has had. The same URL (or media server item) asked
        twice is one callback."""
        now = self.clock()
        with self._write() as conn:
            row = self._locked_job(conn, job_id)
            known = conn.execute(
                select(CALLBACKS.c.media).where(
                    CALLBACKS.c.job_id == job_id, CALLBACKS.c.url == callback.url
                )
            ).scalars()
            if any(_same_callback(media, callback.media) for media in known):
                return
            callback_id = insert_callback(conn, job_id, callback, now)
            if JobStatus(row.status).is_final and row.status in callback.events:
                record_event(conn, row, row.status, now, callback_id=callback_id)
                signal_sender(conn)

    # -- the worker's side --------------------------------------------------------------------

    def claim(
        self,
        worker_id: str,
        held: Collection[str | None] | None = None,
        known: Collection[str | None] | None = None,
        prefer_held_s: float = MODEL_PREFERENCE_S,
        *,
        piece_of: int | None = None,
    ) -> JobRecord | None:
        """Take the oldest due job with a lease, or None. The attempt number is its fencing token.

        held: the models the worker has loaded (None: the default model). It takes the oldest
        due job for one of them before an older job for another model, unless that one has been
        due for prefer_held_s (0: strictly the oldest first): a mixed queue does not make a worker load models back and
        forth, and no job waits long for a model nobody holds. known: the models it can load;
        jobs for others are left to workers configured with them (None: any job). piece_of:
        only a piece of that job (the worker that split it takes its pieces too,
        worker/split_files.py)."""
        now = self.clock()
        due = (JOBS.c.status == JobStatus.QUEUED.value) & (JOBS.c.run_after <= now)
        if known is not None:
            due = due & of_models(known)
        if piece_of is not None:
            due = due & (JOBS.c.parent_id == piece_of)

        def oldest(where: ColumnElement[bool]) -> Select[tuple[int, str | None, datetime]]:
            return (
                select(JOBS.c.id, JOBS.c.model, JOBS.c.run_after)
                .where(where)
                .order_by(JOBS.c.run_after, JOBS.c.id)
                .limit(1)
                # PostgreSQL: concurrent claimers skip each other's rows. SQLite renders no FOR
                # UPDATE; there BEGIN IMMEDIATE (see _write) serialises claimers instead.
                .with_for_update(skip_locked=True)
            )

        with self._write() as conn:
            first = conn.execute(oldest(due)).first()
            if first is None:
                return None
            chosen = first.id
            overdue = first.run_after <= now - timedelta(seconds=prefer_held_s)
            if held is not None and first.model not in held and not overdue:
                preferred = conn.execute(oldest(due & of_models(held))).first()
                if preferred is not None:
                    chosen = preferred.id
            claim = (
                update(JOBS)
                .where(JOBS.c.id == chosen, JOBS.c.status == JobStatus.QUEUED.value)
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
            row = conn.execute(claim).first()
            if row is not None:
                record_event(conn, row, "started", now)
        return job_record(row) if row is not None else None

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
            # A piece's segments are its parent's to publish: not searched, not listed.
            if transcript.segments and row.parent_id is None:
                conn.execute(
                    insert(SEGMENTS),
                    [
                        {
                            "job_id": job_id,
                            "position": position,
                            "start": segment.start,
                            "end": segment.end,
                            "text": segment.text.strip(),
                            "speaker": segment.speaker,
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
                    incomplete=transcript.note is not None,
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
        _drop_pieces(conn, job_id)
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
        record_event(conn, row, "done", now)
        return job_record(row)

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
            announce(conn)
        self._wake()
        return job_record(row)

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
            _drop_pieces(conn, row.id)
        else:
            values.update(status=JobStatus.QUEUED.value, run_after=next_run, progress=0.0)
        updated = conn.execute(
            update(JOBS).where(JOBS.c.id == row.id).values(values).returning(*JOBS.c)
        ).one()
        if next_run is None:
            record_event(conn, updated, "failed", now)
        return job_record(updated)

    # -- pieces of a long file (worker/split_files.py) -----------------------------------------

    def add_pieces(
        self,
        parent_id: int,
        attempt: int,
        spans: Sequence[tuple[int, int]],
        options: JobOptions,
        inode: int = -1,
    ) -> list[JobRecord]:
        """Queue a piece job for each span of the parent's file, fenced by the parent's attempt,
        or keep those it has (an earlier attempt's, some perhaps done: their work is not lost).
        Pieces are due as early as their parent, so that a film is finished before newer work is
        begun, and any worker may take them; `options` are theirs (the parent's language).
        inode: of the file the parent split, the one each piece must read (-1: not checked)."""
        now = self.clock()
        with self._write() as conn:
            parent = self._current_attempt(conn, parent_id, attempt)
            if conn.execute(select(JOBS.c.id).where(JOBS.c.parent_id == parent_id)).first() is None:
                conn.execute(
                    insert(JOBS),
                    [
                        {
                            "parent_id": parent_id,
                            "source_path": parent.source_path,
                            "source_size": parent.source_size,
                            "source_mtime_ns": parent.source_mtime_ns,
                            "source_inode": inode,
                            "source_ctime_ns": parent.source_ctime_ns,
                            "options_key": parent.options_key,
                            "origin": parent.origin,
                            "options": options.model_copy(update={"span": span}).model_dump(
                                mode="json"
                            ),
                            "model": parent.model,
                            "status": JobStatus.QUEUED.value,
                            "attempts": 0,
                            "max_attempts": parent.max_attempts,
                            "run_after": parent.run_after,
                            "progress": 0.0,
                            "outputs": [],
                            "created_at": now,
                            "updated_at": now,
                        }
                        for span in spans
                    ],
                )
                announce(conn)
            rows = conn.execute(
                select(JOBS).where(JOBS.c.parent_id == parent_id).order_by(JOBS.c.id)
            ).all()
        self._wake()
        return [job_record(row) for row in rows]

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
                announce(conn)
        if recovered:
            self._wake()  # idle workers learn when the retry is due
        return recovered

    def cancel(self, job_id: int) -> JobRecord:
        """Cancel a queued or running job; a running worker sees it at its next heartbeat."""
        now = self.clock()
        with self._write() as conn:
            row = self._locked_job(conn, job_id)
            if row.parent_id is not None:
                raise _a_piece(job_id, row.parent_id)
            if row.status == JobStatus.CANCELLED.value:
                return job_record(row)
            if row.status not in (JobStatus.QUEUED.value, JobStatus.RUNNING.value):
                raise InvalidTransition(
                    f"job {job_id} is {row.status}; only queued or running jobs can be cancelled"
                )
            _drop_pieces(conn, job_id)  # their workers find their rows gone and stop
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
            record_event(conn, row, "cancelled", now)
        return job_record(row)

    def retry(self, job_id: int) -> JobRecord:
        """Queue a failed or cancelled job again, with a fresh allowance of attempts."""
        now = self.clock()
        with self._write() as conn:
            row = self._locked_job(conn, job_id)
            if row.parent_id is not None:
                raise _a_piece(job_id, row.parent_id)
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
            record_event(conn, row, "queued", now)
            announce(conn)
        self._wake()
        return job_record(row)

    def run_again(self, job_id: int) -> JobRecord:
        """A new job of an ended job's source and options (the dashboard's "Run again", as a
        forced submit): the file as it is now, where it is now (done/ if its original moved)."""
        job = self.get(job_id)
        if job.parent_id is not None:
            raise _a_piece(job_id, job.parent_id)
        if not job.status.is_final:
            raise InvalidTransition(f"job {job_id} is {job.status.value}; it has not ended yet")
        if job.source_removed_at is not None:
            raise _upload_removed(job_id)
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
