"""Recording a job once per piece of work: its identity and row, finding its job, inserting once.

The steps of JobStore.enqueue and JobStore.refuse (db/job_store.py), which alone call them: the
store decides what a job's state becomes; these find the work's current job and insert once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from whisper_transcriber.db.errors import check_storable
from whisper_transcriber.db.identity import (
    CONTENT,
    UNKNOWN,
    FileVersion,
    file_version,
    file_work_key,
    options_key,
    sampled_fingerprint,
    upload_work_key,
    version_of_stat,
)
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.store_base import JOBS, StoreBase, job_record
from whisper_transcriber.db.values import JobOptions, JobRecord
from whisper_transcriber.db.webhook_outbox import record_event

# First key of the advisory locks that serialise recording jobs of one source (PostgreSQL).
ENQUEUE_LOCK_SPACE = 74_062


@dataclass(frozen=True)
class Work:
    """What a new job would do: one version of a file (or of an upload's content) with options."""

    version: FileVersion
    options: JobOptions
    key_of_options: str
    key: str  # the work's dedupe key (db/identity.py)
    fingerprint: str | None
    content_digest: str | None = None  # an upload's SHA-256

    @classmethod
    def of_file(
        cls, path: str | os.PathLike[str], options: JobOptions, content_digest: str | None = None
    ) -> Work:
        """The file as it is now, its links followed; with content_digest, an upload's content
        under the file's name instead of its path."""
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
        return cls(version, options, key_of_options, key, fingerprint, content_digest)

    @classmethod
    def of_link(cls, path: str | os.PathLike[str], options: JobOptions) -> Work:
        """A symbolic link as itself (not followed), with the link's own version."""
        link = os.fspath(path)
        version = version_of_stat(link, os.lstat(link))
        key_of_options = options_key(options)
        return cls(version, options, key_of_options, file_work_key(version, key_of_options), None)

    def row(self, origin: str, max_attempts: int, now: datetime, **more: Any) -> dict[str, Any]:
        """A new job's row: queued and due now unless `more` says otherwise."""
        version = self.version
        return {
            "source_path": version.path,
            "source_size": version.size,
            "source_mtime_ns": version.mtime_ns,
            "source_inode": version.inode,
            "source_ctime_ns": version.ctime_ns,
            "source_fingerprint": self.fingerprint,
            "options_key": self.key_of_options,
            "dedupe_key": self.key,
            "origin": origin,
            "options": self.options.model_dump(mode="json"),
            "model": self.options.model,
            "status": JobStatus.QUEUED.value,
            "attempts": 0,
            "max_attempts": max_attempts,
            "run_after": now,
            "progress": 0.0,
            "outputs": [],
            "created_at": now,
            "updated_at": now,
            **more,
        }

    def keyed_job(self, conn: Connection) -> Row[Any] | None:
        """The job that holds the work's key, locked."""
        query = select(JOBS).where(JOBS.c.dedupe_key == self.key).with_for_update()
        return conn.execute(query).first()

    def current_job(self, conn: Connection, any_options: bool) -> Row[Any] | None:
        """The job that holds the work's key or, for a file that exists, the one of its content
        (same_content); locked."""
        existing = self.keyed_job(conn)
        if existing is None and self.content_digest is None and self.version.exists:
            existing = same_content(
                conn, self.version, self.fingerprint, self.key_of_options, any_options
            )
        return existing


def same_content(
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
            JOBS.c.parent_id.is_(None),  # a piece is part of its parent's work, not work itself
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


def insert_once(
    db: StoreBase,
    values: dict[str, Any],
    holder: Callable[[Connection], Row[Any] | None],
    answers: Callable[[Connection, Row[Any]], bool] = lambda _conn, _existing: True,
    then: Callable[[Connection, Row[Any]], None] | None = None,
) -> tuple[JobRecord, bool]:
    """Insert the job unless the work's current job (`holder`, locked) answers for it
    (created=False); one that does not (force, a failed upload sent again) hands the work's
    key over to the new job. `then` runs in the same transaction after an insert."""
    key = values["dedupe_key"]
    try:
        with db._write() as conn:
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
                if answers(conn, existing):
                    return job_record(existing), False
                # By id: a job that another process recorded meanwhile keeps its key, and
                # our insert then fails on it (below) instead of making a second job.
                conn.execute(update(JOBS).where(JOBS.c.id == existing.id).values(dedupe_key=None))
            row = conn.execute(insert(JOBS).values(values).returning(*JOBS.c)).one()
            if then is not None:
                then(conn, row)
        return job_record(row), True
    except IntegrityError:
        # Another process recorded the same work between our check and our insert.
        with db._read() as conn:
            return job_record(
                conn.execute(select(JOBS).where(JOBS.c.dedupe_key == key)).one()
            ), False


def supersede_queued(conn: Connection, version: FileVersion, newer_id: int, now: datetime) -> None:
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
    superseded = conn.execute(
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
        .returning(*JOBS.c)
    ).all()
    for row in superseded:
        record_event(conn, row, "cancelled", now)
    if superseded:  # a split file's pieces end with it (worker/split_files.py)
        conn.execute(delete(JOBS).where(JOBS.c.parent_id.in_([row.id for row in superseded])))
