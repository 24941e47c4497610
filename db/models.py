"""Tables: jobs (the queue and its history), transcripts (the results, for history and search),
inbox_scans (each inbox's latest scan, for whichever instance answers HTTP), workers (the
worker registry), and the webhooks' outbox: job_events, job_callbacks, webhook_deliveries."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.expression import false

# Constraint names fixed so that Alembic produces the same schema on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite stores them naive, in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# BIGINT ids on PostgreSQL; SQLite only autoincrements an INTEGER PRIMARY KEY.
ID_TYPE = BigInteger().with_variant(Integer(), "sqlite")
# The largest id either database stores (a 64-bit integer): the API's and the CLI's bound.
MAX_JOB_ID = 2**63 - 1


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # One job per piece of work (a version of a source with its options; db/identity.py):
        # the current job holds the key, a forced rerun takes it over. Null: nobody's to find.
        UniqueConstraint("dedupe_key", name="uq_jobs_dedupe_key"),
        Index("ix_jobs_source_path", "source_path"),
        Index("ix_jobs_source_fingerprint", "source_fingerprint"),
        # The claim's search: queued jobs that are due, oldest first; and those of a model.
        Index("ix_jobs_claim", "status", "run_after", "id"),
        Index("ix_jobs_claim_model", "status", "model", "run_after", "id"),
        Index("ix_jobs_lease", "status", "lease_expires_at"),
        Index("ix_jobs_created_at", "created_at"),
        # The change feed: what changed since a moment.
        Index("ix_jobs_updated_at", "updated_at", "id"),
        Index("ix_jobs_parent_id", "parent_id"),
    )

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True, autoincrement=True)
    source_path: Mapped[str] = mapped_column(Text)
    source_size: Mapped[int] = mapped_column(BigInteger)
    source_mtime_ns: Mapped[int] = mapped_column(BigInteger)
    # -1 where unknown (a missing file, or a job recorded before these were).
    source_inode: Mapped[int] = mapped_column(BigInteger, server_default="-1")
    source_ctime_ns: Mapped[int] = mapped_column(BigInteger, server_default="-1")
    # "sampled:<sha256>" of a few blocks of a file, or "sha256:<hex>" of an upload's whole content.
    source_fingerprint: Mapped[str | None] = mapped_column(String(80))
    options_key: Mapped[str] = mapped_column(String(64), server_default="")
    dedupe_key: Mapped[str | None] = mapped_column(String(64))
    # Where the job came from: "inbox:NAME", "api", "upload" or "cli" (db/values.py).
    origin: Mapped[str] = mapped_column(String(200))
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The options' model, a name from the models setting (null: the default model), where the
    # claim can see it: a worker prefers jobs for a model it holds.
    model: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED.value)
    # The attempt number is also the fencing token: only the current attempt may finish the job.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text)
    outputs: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Inbox jobs may move their original when they end: where to, and where it went.
    move_on_done: Mapped[str | None] = mapped_column(Text)
    move_on_failure: Mapped[str | None] = mapped_column(Text)
    original_moved_to: Mapped[str | None] = mapped_column(Text)
    # Why a job ended done without new transcripts (a media library already had the subtitle).
    note: Mapped[str | None] = mapped_column(Text)
    # When the retention removed the uploaded source (its transcript stays in the database).
    source_removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A piece of a long file split across workers (worker/split_files.py): the job whose file it
    # is a part of. Pieces are removed with their parent's end; listings show parents only.
    parent_id: Mapped[int | None] = mapped_column(
        ID_TYPE, ForeignKey("jobs.id", ondelete="CASCADE")
    )


class TranscriptRow(Base):
    __tablename__ = "transcripts"
    __table_args__ = (Index("ix_transcripts_files_outdated", "files_outdated"),)

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(
        ID_TYPE, ForeignKey("jobs.id", ondelete="CASCADE"), unique=True
    )
    language: Mapped[str] = mapped_column(String(16))
    language_probability: Mapped[float] = mapped_column(Float)
    duration: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    segments: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Seconds from the attempt's claim to its transcript: with duration, the real-time factor.
    processing_s: Mapped[float | None] = mapped_column(Float)
    # The names people gave the speakers of a job with speaker labels: {"Speaker 1": "Ada"}.
    speaker_names: Mapped[dict[str, str] | None] = mapped_column(JSON)
    # The names the job's published files show (None: the labels), and whether they are behind
    # speaker_names: an instance that can reach the files rewrites them (worker/renamed_files.py).
    names_in_files: Mapped[dict[str, str] | None] = mapped_column(JSON)
    files_outdated: Mapped[bool] = mapped_column(Boolean, server_default=false())
    # Lacks something its job asked for (speaker labels that could not be made; the job's note
    # says why): a request for the same work runs it again instead of being answered with it.
    incomplete: Mapped[bool] = mapped_column(Boolean, server_default=false())


class TranscriptSegmentRow(Base):
    """One segment of a transcript, for full-text search with the time of each match.

    The search index lives beside it and is made by the migrations only: an FTS5 table kept in
    step by triggers on SQLite, a generated tsvector column with a GIN index on PostgreSQL
    (SEARCH_INDEX_OBJECTS names them for schema comparisons)."""

    __tablename__ = "transcript_segments"
    __table_args__ = (Index("ix_transcript_segments_job_id", "job_id"),)

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ID_TYPE, ForeignKey("jobs.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    speaker: Mapped[str | None] = mapped_column(String(100))  # its label, with speaker labels


class InboxScanRow(Base):
    """One row per inbox name, overwritten by each scan: the API may run where no watcher does."""

    __tablename__ = "inbox_scans"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    observer: Mapped[str] = mapped_column(String(16))  # values.ObserverKind, as actually used
    poll_interval_s: Mapped[float | None] = mapped_column(Float)
    last_scan_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_scan_new: Mapped[int | None] = mapped_column(Integer)
    scanned_by: Mapped[str | None] = mapped_column(String(200))


class WorkerRow(Base):
    """One row per worker process (db/worker_registry.py): who it is, where, and its heartbeat.

    `machine` tells whether a pid can be checked from here: the kernel's boot and the pid
    namespace, equal only for processes that see the same pids (never two machines or two
    containers that happen to share a hostname)."""

    __tablename__ = "workers"
    __table_args__ = (Index("ix_workers_instance", "instance"),)

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    instance: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    host: Mapped[str] = mapped_column(String(255))
    machine: Mapped[str | None] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    # When the process started, in clock ticks since boot (db/process_identity.py): a pid used
    # again is another process.
    pid_started: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16))
    job_id: Mapped[int | None] = mapped_column(ID_TYPE)
    # The models it holds loaded, by name ("default" for the default model), as of its heartbeat.
    models: Mapped[list[str] | None] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class JobEventRow(Base):
    """A job event (queued, started, done, failed, cancelled) that webhooks may want: written in
    the same transaction as the job's change, removed once routed into deliveries
    (db/webhook_outbox.py)."""

    __tablename__ = "job_events"
    __table_args__ = (Index("ix_job_events_job_id", "job_id"),)

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True, autoincrement=True)
    # No foreign key: an event outlives its job when the retention forgets the job before the
    # event is routed (a watch instance down for a while); it says all it needs itself.
    job_id: Mapped[int] = mapped_column(ID_TYPE)
    type: Mapped[str] = mapped_column(String(16))
    # The job as it was at the event (db/values.JobRecord as JSON): a delivery sent late still
    # says what happened then.
    job: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Only for this request's callback (a job that had already ended when it was asked for).
    callback_id: Mapped[int | None] = mapped_column(ID_TYPE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class JobCallbackRow(Base):
    """A callback URL a request gave for its job's events (callback_url), or a media server's
    item to refresh once its job is done (`media`; url and secret then empty)."""

    __tablename__ = "job_callbacks"
    __table_args__ = (Index("ix_job_callbacks_job_id", "job_id"),)

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True, autoincrement=True)
    # No foreign key, as for events: removed by the sender once neither its job nor an event of
    # it is left (WebhookOutbox.forget).
    job_id: Mapped[int] = mapped_column(ID_TYPE)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JSON)
    transcript: Mapped[bool] = mapped_column(Boolean)
    # {"server": NAME, "item": ID, ...}: what the media server's refresh needs.
    media: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WebhookDeliveryRow(Base):
    """One message to one receiver: its exact body (signed afresh at each attempt), its attempts
    and its outcome. Kept after its job is forgotten: the history of what was sent."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("message_id", name="uq_webhook_deliveries_message_id"),
        # The sender's search: pending deliveries that are due, oldest first.
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at", "id"),
        Index("ix_webhook_deliveries_job_id", "job_id"),
        Index("ix_webhook_deliveries_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True, autoincrement=True)
    # Standard Webhooks' webhook-id: the same at every attempt, so receivers drop repeats.
    message_id: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[int | None] = mapped_column(ID_TYPE)
    event: Mapped[str] = mapped_column(String(16))
    # "service:NAME" (the webhooks setting), "request" (a callback_url) or "media:NAME" (a
    # media server's refresh, the body saying of which item).
    subscription: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(Text)
    # A request's callback is held to the callback rules (no private addresses unless allowed).
    guarded: Mapped[bool] = mapped_column(Boolean)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # pending, delivered, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The attempts made before it was last sent again by hand: its backoff starts over there.
    resent_after: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # An attempt under way holds the delivery until then (a sender killed mid-attempt).
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    give_up_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    # The latest attempts: [{"at", "status", "error", "answer"}], newest last.
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# Search objects made by migration 0004 outside the models (dialect-specific).
SEARCH_INDEX_OBJECTS = frozenset(
    {"transcript_segments_fts", "search_vector", "ix_transcript_segments_search_vector"}
)


def include_in_schema_comparison(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """For Alembic's comparisons: leave out the search index and FTS5's own shadow tables."""
    return not (
        name and (name in SEARCH_INDEX_OBJECTS or name.startswith("transcript_segments_fts"))
    )
