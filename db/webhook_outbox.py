"""The webhooks' outbox: job events recorded with the job changes that cause them, routed into
deliveries (one per receiver), and each delivery's attempts until it is delivered or given up.

The job store (db/job_store.py) calls record_event inside the transaction of each change, so an
event exists exactly when its change was committed. The sender (service/webhooks/sender.py) asks
this module to route events, claim due deliveries and record their answers; it owns the HTTP.
"""

from __future__ import annotations

import functools
import logging
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from pydantic import TypeAdapter
from sqlalchemy import (
    Connection,
    Engine,
    Row,
    Table,
    delete,
    exists,
    func,
    insert,
    select,
    text,
    update,
)

from whisper_transcriber.db.announcements import CHANGES_CHANNEL
from whisper_transcriber.db.clock import utcnow
from whisper_transcriber.db.errors import InvalidTransition, QueueError
from whisper_transcriber.db.models import JobCallbackRow, JobEventRow, WebhookDeliveryRow
from whisper_transcriber.db.store_base import JOBS, StoreBase, job_record
from whisper_transcriber.db.values import JobRecord, stored_options

EVENTS = cast(Table, JobEventRow.__table__)
CALLBACKS = cast(Table, JobCallbackRow.__table__)
DELIVERIES = cast(Table, WebhookDeliveryRow.__table__)

EventType = Literal["queued", "started", "done", "failed", "cancelled"]
EVENT_TYPES: tuple[EventType, ...] = ("queued", "started", "done", "failed", "cancelled")
DeliveryStatus = Literal["pending", "delivered", "failed"]
# The attempts a delivery remembers (newest last); its count goes on beyond them.
HISTORY_KEPT = 20
ROUTE_BATCH = 100

log = logging.getLogger(__name__)


class DeliveryNotFound(QueueError):
    def __init__(self, delivery_id: int) -> None:
        super().__init__(f"delivery {delivery_id} does not exist")
        self.delivery_id = delivery_id


@dataclass(frozen=True)
class CallbackRequest:
    """A callback a request asked for: where its job's events go and how they are signed."""

    url: str
    secret: str
    events: tuple[EventType, ...] = EVENT_TYPES
    transcript: bool = False
    # A media server's item to refresh once the job is done (url and secret empty).
    media: dict[str, Any] | None = None


@dataclass(frozen=True)
class Callback(CallbackRequest):
    id: int = 0
    job_id: int = 0
    created_at: datetime | None = None


@dataclass(frozen=True)
class JobEvent:
    id: int
    type: EventType
    job: JobRecord  # as it was at the event
    created_at: datetime
    # Only for this callback (a request that subscribed after its job had ended).
    callback_id: int | None = None


@dataclass(frozen=True)
class NewDelivery:
    """What the router makes of an event for one receiver."""

    subscription: str
    url: str
    secret: str
    guarded: bool
    body: str


@dataclass(frozen=True)
class Delivery:
    id: int
    message_id: str
    job_id: int | None
    event: str
    subscription: str
    url: str
    secret: str = field(repr=False)
    guarded: bool
    body: str
    status: DeliveryStatus
    attempts: int
    resent_after: int
    next_attempt_at: datetime
    give_up_at: datetime
    last_status: int | None
    last_error: str | None
    history: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, row: Row[Any]) -> Delivery:
        """body and secret are left empty where the query did not read them (listings)."""
        m = row._mapping
        return cls(**{name: m.get(name, "") for name in cls.__dataclass_fields__})


def shown_url(delivery: Delivery) -> str:
    """Where a delivery goes, as logs and the API show it: an operator's receiver by its origin
    only (a Slack or Discord webhook URL is a credential in itself), a request's as given."""
    if delivery.guarded:
        return delivery.url
    parts = urlsplit(delivery.url)
    if not parts.scheme or not parts.netloc:
        return delivery.url
    hidden = "/..." if parts.path.strip("/") or parts.query else "/"
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{hidden}"


@dataclass(frozen=True)
class Outcome:
    """What one attempt found."""

    delivered: bool
    status: int | None = None
    error: str | None = None
    answer: str = ""


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter between a delivery's attempts: attempt n failed -> a
    wait drawn between half and all of first_s * 2**(n-1), capped; receivers that come back
    together are not all called at once."""

    first_s: float = 5.0
    max_s: float = 3600.0

    def delay_s(self, attempt: int, draw: Callable[[], float] = random.random) -> float:
        full = min(self.first_s * 2.0 ** max(attempt - 1, 0), self.max_s)
        return float(full * (0.5 + draw() / 2))


def record_event(
    conn: Connection,
    row: Row[Any],
    event: EventType,
    now: datetime,
    callback_id: int | None = None,
) -> None:
    """An event of the job in this row, in the caller's transaction. A piece of a split file has
    none: its file's job speaks for it."""
    if row.parent_id is not None:
        return
    conn.execute(
        insert(EVENTS).values(
            job_id=row.id,
            type=event,
            job=_job_snapshots().dump_python(job_record(row), mode="json"),
            callback_id=callback_id,
            created_at=now,
        )
    )


def insert_callback(conn: Connection, job_id: int, callback: CallbackRequest, now: datetime) -> int:
    return cast(
        int,
        conn.execute(
            insert(CALLBACKS)
            .values(
                job_id=job_id,
                url=callback.url,
                secret=callback.secret,
                events=list(callback.events),
                transcript=callback.transcript,
                media=callback.media,
                created_at=now,
            )
            .returning(CALLBACKS.c.id)
        ).scalar_one(),
    )


def signal_sender(conn: Connection) -> None:
    """Wake the sender for a delivery that no job change announces (PostgreSQL's channel; on
    SQLite the write to the file is the signal)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANGES_CHANNEL})


class WebhookOutbox(StoreBase):
    """Events routed into deliveries; deliveries claimed, answered, listed and sent again."""

    def __init__(
        self,
        engine: Engine,
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], datetime] = utcnow,
        database_clock: bool | None = None,
    ) -> None:
        super().__init__(engine, clock=clock, database_clock=database_clock)
        self.backoff = backoff or Backoff()

    # -- routing ----------------------------------------------------------------------------

    def route(
        self,
        deliveries_for: Callable[[JobEvent, Sequence[Callback]], Sequence[NewDelivery]],
        give_up_after_s: float,
        limit: int = ROUTE_BATCH,
    ) -> int:
        """Turn the oldest events into deliveries (deliveries_for says which, with their bodies)
        and remove them. Bodies (a transcript, perhaps) are made outside any transaction; then
        one short transaction records the deliveries of the events still there and removes
        them: an event is routed once, whoever routes. Returns how many events were routed."""
        with self._read() as conn:
            rows = conn.execute(select(EVENTS).order_by(EVENTS.c.id).limit(limit)).all()
            if not rows:
                return 0
            callbacks = [
                _callback(c)
                for c in conn.execute(
                    select(CALLBACKS)
                    .where(CALLBACKS.c.job_id.in_({row.job_id for row in rows}))
                    .order_by(CALLBACKS.c.id)
                )
            ]
        routed: dict[int, list[NewDelivery]] = {}
        for row in rows:
            try:
                event = JobEvent(
                    row.id, row.type, _job_of(row.job), row.created_at, row.callback_id
                )
                # A callback hears what happens after it was asked for (or the end replayed
                # for it alone), never what was over before.
                theirs = [
                    c
                    for c in callbacks
                    if c.job_id == row.job_id
                    and (
                        c.id == row.callback_id
                        if row.callback_id is not None
                        else c.created_at is None or c.created_at <= row.created_at
                    )
                ]
                routed[row.id] = list(deliveries_for(event, theirs))
            except QueueError:
                raise
            except Exception:  # one event that cannot be read must not hold up the rest
                log.exception(
                    "webhooks: job %s's %s event cannot be routed; it is dropped",
                    row.job_id,
                    row.type,
                )
                routed[row.id] = []
        now = self.clock()
        with self._write() as conn:
            present = set(
                conn.execute(
                    select(EVENTS.c.id)
                    .where(EVENTS.c.id.in_(routed))
                    .with_for_update(skip_locked=True)
                ).scalars()
            )
            values = [
                {
                    "message_id": f"msg_{uuid.uuid4().hex}",
                    "job_id": row.job_id,
                    "event": row.type,
                    "subscription": new.subscription,
                    "url": new.url,
                    "secret": new.secret,
                    "guarded": new.guarded,
                    "body": new.body,
                    "status": "pending",
                    "attempts": 0,
                    "resent_after": 0,
                    "next_attempt_at": now,
                    "give_up_at": now + timedelta(seconds=give_up_after_s),
                    "history": [],
                    "created_at": now,
                    "updated_at": now,
                }
                for row in rows
                if row.id in present
                for new in routed[row.id]
            ]
            if values:
                conn.execute(insert(DELIVERIES), values)
            if present:
                conn.execute(delete(EVENTS).where(EVENTS.c.id.in_(present)))
        return len(rows)

    def counts(self) -> dict[DeliveryStatus, int]:
        """Deliveries by status (every status, 0 where none), for /metrics."""
        counts: dict[DeliveryStatus, int] = {"pending": 0, "delivered": 0, "failed": 0}
        query = select(DELIVERIES.c.status, func.count()).group_by(DELIVERIES.c.status)
        with self._read() as conn:
            for found, count in conn.execute(query):
                counts[found] = int(count)
        return counts

    # -- sending ----------------------------------------------------------------------------

    def claim_due(
        self, limit: int, lease_s: float, *, guarded: bool | None = None
    ) -> list[Delivery]:
        """The oldest due deliveries, each held for lease_s by this sender (its attempt counted
        now: a sender killed mid-attempt has used it, and the delivery is due again when the
        lease ends). guarded: only requests' callbacks (True) or only the operator's (False)."""
        now = self.clock()
        due = (
            (DELIVERIES.c.status == "pending")
            & (DELIVERIES.c.next_attempt_at <= now)
            & (DELIVERIES.c.lease_expires_at.is_(None) | (DELIVERIES.c.lease_expires_at < now))
        )
        if guarded is not None:
            due = due & (DELIVERIES.c.guarded == guarded)
        with self._read() as conn:  # most looks find nothing: no write lock for them
            if conn.execute(select(DELIVERIES.c.id).where(due).limit(1)).first() is None:
                return []
        with self._write() as conn:
            ids = (
                conn.execute(
                    select(DELIVERIES.c.id)
                    .where(due)
                    .order_by(DELIVERIES.c.next_attempt_at, DELIVERIES.c.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
                .scalars()
                .all()
            )
            if not ids:
                return []
            rows = conn.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.id.in_(ids))
                .values(
                    attempts=DELIVERIES.c.attempts + 1,
                    lease_expires_at=now + timedelta(seconds=lease_s),
                    updated_at=now,
                )
                .returning(*DELIVERIES.c)
            ).all()
        return sorted((Delivery.of(row) for row in rows), key=lambda d: (d.next_attempt_at, d.id))

    def record(self, delivery_id: int, attempt: int, outcome: Outcome) -> Delivery | None:
        """The answer of an attempt, fenced by it (None: the delivery was taken over or sent
        again meanwhile). Not delivered: due again after the backoff, or failed for good once
        that would pass its give_up_at."""
        now = self.clock()
        with self._write() as conn:
            row = conn.execute(
                select(DELIVERIES)
                .where(
                    DELIVERIES.c.id == delivery_id,
                    DELIVERIES.c.attempts == attempt,
                    DELIVERIES.c.status == "pending",
                )
                .with_for_update()
            ).first()
            if row is None:
                return None
            tried = {
                "at": now.isoformat(),
                "attempt": attempt,
                "status": outcome.status,
                "error": outcome.error,
                "answer": outcome.answer,
            }
            values: dict[str, Any] = {
                "history": [*row.history, tried][-HISTORY_KEPT:],
                "last_status": outcome.status,
                "last_error": outcome.error,
                "lease_expires_at": None,
                "updated_at": now,
            }
            if outcome.delivered:
                values.update(status="delivered", finished_at=now)
            else:
                tries = attempt - row.resent_after  # since it was last sent again by hand
                next_at = now + timedelta(seconds=self.backoff.delay_s(tries))
                if next_at > row.give_up_at:
                    values.update(status="failed", finished_at=now)
                else:
                    values.update(next_attempt_at=next_at)
            updated = conn.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.id == delivery_id)
                .values(values)
                .returning(*DELIVERIES.c)
            ).one()
        return Delivery.of(updated)

    def next_due(self) -> datetime | None:
        """When the earliest pending delivery is due, or its attempt's lease ends."""
        pending = DELIVERIES.c.status == "pending"
        held = DELIVERIES.c.lease_expires_at.is_not(None)
        with self._read() as conn:
            first_due = conn.scalar(_earliest(DELIVERIES.c.next_attempt_at, pending & ~held))
            first_lease = conn.scalar(_earliest(DELIVERIES.c.lease_expires_at, pending & held))
        moments = [m for m in (first_due, first_lease) if m is not None]
        return min(moments) if moments else None

    # -- operators --------------------------------------------------------------------------

    def get(self, delivery_id: int) -> Delivery:
        with self._read() as conn:
            row = conn.execute(select(DELIVERIES).where(DELIVERIES.c.id == delivery_id)).first()
        if row is None:
            raise DeliveryNotFound(delivery_id)
        return Delivery.of(row)

    def deliveries(
        self,
        *,
        status: DeliveryStatus | None = None,
        job_id: int | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        """Newest first, without their bodies and secrets (a body may hold a transcript)."""
        shown = [c for c in DELIVERIES.c if c.name not in ("body", "secret")]
        query = select(*shown).order_by(DELIVERIES.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(DELIVERIES.c.status == status)
        if job_id is not None:
            query = query.where(DELIVERIES.c.job_id == job_id)
        if before_id is not None:
            query = query.where(DELIVERIES.c.id < before_id)
        with self._read() as conn:
            return [Delivery.of(row) for row in conn.execute(query)]

    def resend(self, delivery_id: int, give_up_after_s: float) -> Delivery:
        """A failed delivery due again now, with as long again to succeed; the same message
        (its id and body), so a receiver that had it after all can tell."""
        now = self.clock()
        with self._write() as conn:
            row = conn.execute(
                select(DELIVERIES).where(DELIVERIES.c.id == delivery_id).with_for_update()
            ).first()
            if row is None:
                raise DeliveryNotFound(delivery_id)
            if row.status != "failed":
                raise InvalidTransition(
                    f"delivery {delivery_id} is {row.status}; only failed deliveries are sent again"
                )
            updated = conn.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.id == delivery_id)
                .values(
                    status="pending",
                    resent_after=row.attempts,
                    next_attempt_at=now,
                    give_up_at=now + timedelta(seconds=give_up_after_s),
                    lease_expires_at=None,
                    finished_at=None,
                    updated_at=now,
                )
                .returning(*DELIVERIES.c)
            ).one()
            signal_sender(conn)
        return Delivery.of(updated)

    def forget(self, finished_before: datetime, limit: int = 1000) -> int:
        """Remove delivered and failed deliveries that ended before the moment (retention)."""
        with self._write() as conn:
            ids = (
                conn.execute(
                    select(DELIVERIES.c.id)
                    .where(
                        DELIVERIES.c.status != "pending",
                        DELIVERIES.c.finished_at < finished_before,
                    )
                    .limit(limit)
                )
                .scalars()
                .all()
            )
            if ids:
                conn.execute(delete(DELIVERIES).where(DELIVERIES.c.id.in_(ids)))
            # Callbacks whose job the retention forgot, once its events are routed.
            conn.execute(
                delete(CALLBACKS).where(
                    ~exists(select(JOBS.c.id).where(JOBS.c.id == CALLBACKS.c.job_id)),
                    ~exists(select(EVENTS.c.id).where(EVENTS.c.job_id == CALLBACKS.c.job_id)),
                )
            )
        return len(ids)


def _callback(row: Row[Any]) -> Callback:
    return Callback(
        url=row.url,
        secret=row.secret,
        events=tuple(row.events),
        transcript=row.transcript,
        media=row.media,
        id=row.id,
        job_id=row.job_id,
        created_at=row.created_at,
    )


def _earliest(column: Any, where: Any) -> Any:
    return select(column).where(where).order_by(column).limit(1)


@functools.cache
def _job_snapshots() -> TypeAdapter[JobRecord]:
    """A job as JSON and back (an event's record of it)."""
    return TypeAdapter(JobRecord)


def _job_of(snapshot: dict[str, Any]) -> JobRecord:
    """An event's job, its options read as a job row's are (stored_options: what another
    version of the service wrote is read, not refused)."""
    return _job_snapshots().validate_python(
        {**snapshot, "options": stored_options(snapshot.get("options") or {})}
    )
