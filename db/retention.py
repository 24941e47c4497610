"""The retention's statements: which uploads may go, marking them removed, and forgetting old jobs.

Removing files is the caller's (service/retention.py), after the commit that marked them: a folder
is marked only in a transaction that finds no job needing it, and a retry refuses a job whose
source is marked (JobStore.retry), so nothing can start on a file between its mark and its removal.

It writes jobs rows, through the store's transactions, but never a job's state: it stamps an
ended job's upload as removed and deletes ended jobs. Those statements stay here, beside the
queries that choose them, rather than widen the job store with the retention's own concern.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy import ColumnElement, delete, exists, select, update

from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.store_base import JOBS, source_path_under
from whisper_transcriber.db.values import UPLOAD_ORIGIN

ENDED = (JobStatus.DONE.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value)
ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
# Jobs deleted per transaction: each batch is short, so claims and finishes never wait long.
FORGET_BATCH = 500


class Retention:
    """Upload folders of ended jobs, and ended jobs themselves, past their keeping time."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def _under(self, folder: Path) -> ColumnElement[bool]:
        return source_path_under(folder, self.store.engine.dialect.name)

    def expired_upload_folders(
        self, root: Path, ended_before: datetime, limit: int = 500
    ) -> list[str]:
        """Names of root's folders holding the source of an upload job that ended before a time
        and whose source is not removed yet; the longest ended first."""
        query = (
            select(JOBS.c.source_path)
            .where(
                JOBS.c.origin == UPLOAD_ORIGIN,
                JOBS.c.status.in_(ENDED),
                JOBS.c.finished_at < ended_before,
                JOBS.c.source_removed_at.is_(None),
                self._under(root),
            )
            .order_by(JOBS.c.finished_at, JOBS.c.id)
            .limit(limit)
        )
        with self.store._read() as conn:
            paths = conn.execute(query).scalars().all()
        names = (Path(path).relative_to(root).parts[0] for path in paths)
        return list(dict.fromkeys(names))

    def mark_removed(self, folder: Path, ended_before: datetime) -> list[int] | None:
        """Mark the jobs whose sources lie in folder as removed (source_removed_at), in one
        transaction that first finds that none of them needs it; their ids (those already marked
        left out). None, marking nothing, when one is queued or running, or ended at or after
        ended_before (a rerun of the same file) without its source removed."""
        now = self.store.clock()
        query = (
            select(JOBS.c.id, JOBS.c.status, JOBS.c.finished_at, JOBS.c.source_removed_at)
            .where(self._under(folder))
            .order_by(JOBS.c.id)
            # PostgreSQL: a retry of one of them (which locks its row) waits for this transaction,
            # then finds it marked. SQLite: BEGIN IMMEDIATE serialises every writer anyway.
            .with_for_update()
        )
        with self.store._write() as conn:
            rows = conn.execute(query).all()
            if any(
                row.status in ACTIVE
                or (
                    row.source_removed_at is None
                    and (row.finished_at is None or row.finished_at >= ended_before)
                )
                for row in rows
            ):
                return None
            ids = [row.id for row in rows if row.source_removed_at is None]
            if ids:
                conn.execute(
                    update(JOBS)
                    .where(JOBS.c.id.in_(ids))
                    .values(source_removed_at=now, updated_at=now)
                )
        return ids

    def unmark(self, job_ids: Sequence[int]) -> None:
        """Undo mark_removed when the folder was not removed after all (a job came to need it)."""
        if not job_ids:
            return
        with self.store._write() as conn:
            conn.execute(
                update(JOBS)
                .where(JOBS.c.id.in_(job_ids))
                .values(source_removed_at=None, updated_at=self.store.clock())
            )

    def folders_in_use(self, root: Path) -> set[str]:
        """Names of root's entries that hold the source of a job, whatever its state, whose
        source is not marked removed: everything else in root is no job's."""
        query = (
            select(JOBS.c.source_path)
            .where(self._under(root), JOBS.c.source_removed_at.is_(None))
            .distinct()
        )
        with self.store._read() as conn:
            paths = conn.execute(query).scalars().all()
        return {Path(path).relative_to(root).parts[0] for path in paths}

    def in_use(self, folder: Path) -> bool:
        """Whether a job whose source lies in folder is not marked removed (a new one, say)."""
        query = select(JOBS.c.id).where(self._under(folder), JOBS.c.source_removed_at.is_(None))
        with self.store._read() as conn:
            return conn.execute(query.limit(1)).first() is not None

    def forget_jobs(self, ended_before: datetime, batch: int = FORGET_BATCH) -> int:
        """Delete jobs that ended before a time (their transcripts and search rows go with them,
        ON DELETE CASCADE) and that no watcher can take for new again: uploads, jobs whose
        original was moved away (or found gone), and jobs of a path that has a newer job. A job
        that is the only record of a file still in an inbox is kept: forgetting it would have
        the next rescan transcribe the file again. Never a queued or running job. Returns how
        many were deleted."""
        newer = JOBS.alias("newer")
        superseded = exists(
            select(newer.c.id).where(
                newer.c.source_path == JOBS.c.source_path, newer.c.id > JOBS.c.id
            )
        )
        forgettable = (
            JOBS.c.status.in_(ENDED)
            & (JOBS.c.finished_at < ended_before)
            & JOBS.c.parent_id.is_(None)  # a piece goes with its parent's end
            & (
                (JOBS.c.origin == UPLOAD_ORIGIN)
                | JOBS.c.original_moved_to.is_not(None)
                | superseded
            )
        )
        deleted = 0
        while True:
            with self.store._write() as conn:
                ids = (
                    conn.execute(
                        select(JOBS.c.id).where(forgettable).order_by(JOBS.c.id).limit(batch)
                    )
                    .scalars()
                    .all()
                )
                if ids:
                    # The conditions again: a retry between the select and the delete keeps its job.
                    result = conn.execute(
                        delete(JOBS).where(
                            JOBS.c.id.in_(ids),
                            JOBS.c.status.in_(ENDED),
                            JOBS.c.finished_at < ended_before,
                        )
                    )
                    deleted += result.rowcount
            if len(ids) < batch:
                return deleted
