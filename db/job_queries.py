"""Reading jobs and their transcripts: one job, listings, the change feed, stats, search; no writes."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import func, select, text

from whisper_transcriber.db.engine import check_writable
from whisper_transcriber.db.errors import DatabaseUnavailable, JobNotFound, WritersBusy
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.store_base import JOBS, TRANSCRIPTS, StoreBase, job_record, of_models
from whisper_transcriber.db.transcript import Transcript
from whisper_transcriber.db.transcript_search import search_segments
from whisper_transcriber.db.values import (
    JobQuery,
    JobRecord,
    QueueStats,
    SearchHit,
    TranscriptSummary,
)

# How long the change feed's read waits for the write lock: a commit takes milliseconds.
WRITERS_WAIT_MS = 100


class JobQueries(StoreBase):
    """Every question about jobs, answered with values (JobRecord and friends); the job store
    (db/job_store.py) is one too, for callers that also change jobs."""

    def get(self, job_id: int) -> JobRecord:
        with self._read() as conn:
            row = conn.execute(select(JOBS).where(JOBS.c.id == job_id)).first()
        if row is None:
            raise JobNotFound(job_id)
        return job_record(row)

    def get_many(self, job_ids: Sequence[int]) -> list[JobRecord]:
        with self._read() as conn:
            rows = conn.execute(select(JOBS).where(JOBS.c.id.in_(job_ids)).order_by(JOBS.c.id))
            return [job_record(row) for row in rows]

    def running(self) -> list[JobRecord]:
        query = select(JOBS).where(JOBS.c.status == JobStatus.RUNNING.value).order_by(JOBS.c.id)
        with self._read() as conn:
            return [job_record(row) for row in conn.execute(query)]

    def pieces(self, parent_id: int) -> list[JobRecord]:
        """The pieces of a split job, in the file's order (worker/split_files.py)."""
        query = select(JOBS).where(JOBS.c.parent_id == parent_id).order_by(JOBS.c.id)
        with self._read() as conn:
            return [job_record(row) for row in conn.execute(query)]

    def next_due(self, models: Collection[str | None] | None = None) -> datetime | None:
        """When the earliest queued job becomes due (now or later); None when none is queued.
        models: of jobs for these models only (None: the default model), as a worker that can
        load only those claims them; None: of any job."""
        queued = JOBS.c.status == JobStatus.QUEUED.value
        if models is not None:
            queued = queued & of_models(models)
        query = select(JOBS.c.run_after).where(queued).order_by(JOBS.c.run_after).limit(1)
        with self._read() as conn:
            due: datetime | None = conn.execute(query).scalar()
        return due

    def list_jobs(self, query: JobQuery, limit: int) -> list[JobRecord]:
        """Jobs matching the query, newest first, at most `limit`."""
        if any("\x00" in (value or "") for value in (query.origin, query.text, query.path)):
            return []  # no stored text holds a NUL (PostgreSQL cannot even compare one)
        statement = (
            select(JOBS).where(JOBS.c.parent_id.is_(None)).order_by(JOBS.c.id.desc()).limit(limit)
        )
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
            return [job_record(row) for row in conn.execute(statement)]

    def changed_since(
        self,
        moment: datetime,
        after_id: int | None = None,
        limit: int = 500,
        *,
        after_writers: bool = False,
    ) -> list[JobRecord]:
        """Jobs updated at or after a moment (with after_id: after that job at that moment),
        oldest change first: the change feed's query, paged by (updated_at, id). after_writers:
        on SQLite, read under the write lock, so that a commit under way when the read begins
        is waited for and seen (it changes nothing, so it writes nothing); WritersBusy when the
        lock is not had within WRITERS_WAIT_MS (a long write, not a commit, is under way)."""
        if after_id is None:
            newer = JOBS.c.updated_at >= moment
        else:
            newer = (JOBS.c.updated_at > moment) | (
                (JOBS.c.updated_at == moment) & (JOBS.c.id > after_id)
            )
        query = select(JOBS).where(newer).order_by(JOBS.c.updated_at, JOBS.c.id).limit(limit)
        if not after_writers:
            with self._read() as conn:
                return [job_record(row) for row in conn.execute(query)]
        try:
            with self._write(lock_wait_ms=WRITERS_WAIT_MS) as conn:
                return [job_record(row) for row in conn.execute(query)]
        except DatabaseUnavailable as exc:
            raise WritersBusy(str(exc)) from exc

    def is_current(self, job_id: int, attempt: int) -> bool:
        """Whether this attempt still holds the job (not cancelled, not taken over)."""
        query = select(JOBS.c.id).where(
            JOBS.c.id == job_id,
            JOBS.c.attempts == attempt,
            JOBS.c.status == JobStatus.RUNNING.value,
        )
        with self._read() as conn:
            return conn.execute(query).first() is not None

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
            return [job_record(row) for row in conn.execute(query)]

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

    # -- transcripts ----------------------------------------------------------------------------

    def transcript(self, job_id: int) -> Transcript | None:
        with self._read() as conn:
            row = conn.execute(select(TRANSCRIPTS).where(TRANSCRIPTS.c.job_id == job_id)).first()
        if row is None:
            return None
        return Transcript.from_dict(dict(row._mapping))

    def transcript_summaries(self, job_ids: Sequence[int]) -> dict[int, TranscriptSummary]:
        """Language, its probability and duration of the jobs' transcripts, for listings (no
        segments read)."""
        if not job_ids:
            return {}
        query = select(
            TRANSCRIPTS.c.job_id,
            TRANSCRIPTS.c.language,
            TRANSCRIPTS.c.language_probability,
            TRANSCRIPTS.c.duration,
        ).where(TRANSCRIPTS.c.job_id.in_(job_ids))
        with self._read() as conn:
            return {
                job_id: TranscriptSummary(language, duration, probability)
                for job_id, language, probability, duration in conn.execute(query)
            }

    def search(self, query: str, limit: int = 20, offset: int = 0) -> list[SearchHit]:
        """Transcript segments matching every word of the query, best first, with a plain
        snippet and its matches' offsets (db/transcript_search.py)."""
        with self._read() as conn:
            return search_segments(conn, query, limit, offset)

    # -- the service's health -------------------------------------------------------------------

    def stats(self) -> QueueStats:
        """Counts and totals for metrics: a few aggregate queries, whatever the history's size."""
        now = self.clock()
        by_status = (  # jobs as people submitted them; the queue's depth counts pieces too
            select(JOBS.c.status, func.count())
            .where(JOBS.c.parent_id.is_(None))
            .group_by(JOBS.c.status)
        )
        due = select(func.count()).where(
            JOBS.c.status == JobStatus.QUEUED.value, JOBS.c.run_after <= now
        )
        totals = (  # not the pieces': theirs are counted in their parent's, once it is done
            select(
                func.coalesce(func.sum(TRANSCRIPTS.c.duration), 0.0),
                func.coalesce(func.sum(TRANSCRIPTS.c.processing_s), 0.0),
            )
            .select_from(TRANSCRIPTS.join(JOBS, JOBS.c.id == TRANSCRIPTS.c.job_id))
            .where(JOBS.c.parent_id.is_(None))
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
