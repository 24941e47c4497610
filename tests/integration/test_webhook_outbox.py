"""The webhooks' outbox on both databases: an event for each job change in its own transaction,
routed once into deliveries, attempts fenced, retried with backoff, given up, sent again."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, func, select, update

from tests.helpers.jobs import Clock
from whisper_transcriber.db.errors import InvalidTransition
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.store_base import JOBS
from whisper_transcriber.db.transcript import Transcript
from whisper_transcriber.db.values import JobOptions
from whisper_transcriber.db.webhook_outbox import (
    CALLBACKS,
    EVENTS,
    Backoff,
    Callback,
    CallbackRequest,
    JobEvent,
    NewDelivery,
    Outcome,
    WebhookOutbox,
)

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
DAY_S = 86400.0


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def jobs(db_engine: Engine, clock: Clock) -> JobStore:
    return JobStore(db_engine, clock=clock)


@pytest.fixture
def outbox(db_engine: Engine, clock: Clock) -> WebhookOutbox:
    return WebhookOutbox(db_engine, clock=clock, backoff=Backoff(first_s=10, max_s=100))


def _audio(tmp_path: Path, name: str = "a.wav") -> Path:
    path = tmp_path / name
    path.write_bytes(b"RIFF" + bytes(100))
    return path


def _everything(event: JobEvent, callbacks: Sequence[Callback]) -> list[NewDelivery]:
    """A service-wide subscription to every event, and each callback for the events it asked."""
    body = f"{event.type}:{event.job.id}:{event.job.status.value}"
    routed = []
    if event.callback_id is None:  # else a replay of the end for that callback alone
        routed.append(NewDelivery("service:all", "http://receiver.test/", SECRET, False, body))
    routed += [
        NewDelivery("request", c.url, c.secret, True, body)
        for c in callbacks
        if event.type in c.events
    ]
    return routed


def _events(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(EVENTS)) or 0)


def test_each_change_of_a_job_is_one_event_with_the_job_as_it_was(
    jobs: JobStore, outbox: WebhookOutbox, tmp_path: Path
) -> None:
    job, _ = jobs.enqueue(_audio(tmp_path), JobOptions(), "api")
    claimed = jobs.claim("w1")
    assert claimed is not None
    jobs.complete(job.id, claimed.attempts, Transcript("en", 1.0, 1.0, ()))
    seen: list[JobEvent] = []

    def record(event: JobEvent, _callbacks: Sequence[Callback]) -> list[NewDelivery]:
        seen.append(event)
        return []

    assert outbox.route(record, DAY_S) == 3
    assert [(e.type, e.job.status.value) for e in seen] == [
        ("queued", "queued"),
        ("started", "running"),
        ("done", "done"),
    ]
    assert seen[1].job.worker_id == "w1"  # as it was then, not as it is now
    assert outbox.route(record, DAY_S) == 0  # routed once
    assert outbox.deliveries() == []


def test_failures_cancels_retries_and_refusals_are_events(
    jobs: JobStore, outbox: WebhookOutbox, clock: Clock, tmp_path: Path
) -> None:
    first, _ = jobs.enqueue(_audio(tmp_path, "1.wav"), JobOptions(), "api", max_attempts=2)
    claimed = jobs.claim("w1")
    assert claimed is not None
    jobs.fail(first.id, claimed.attempts, "boom")  # attempts left: back in the queue, no event
    clock.advance(3600)
    claimed = jobs.claim("w1")
    assert claimed is not None
    jobs.fail(first.id, claimed.attempts, "boom again")  # for good
    jobs.retry(first.id)
    jobs.cancel(first.id)
    (tmp_path / "link.wav").symlink_to("/etc/passwd")
    jobs.refuse(tmp_path / "link.wav", JobOptions(), "inbox:x", "a link out of the inbox")
    types: list[str] = []
    outbox.route(lambda e, _c: types.append(e.type) or [], DAY_S)
    assert types == ["queued", "started", "started", "failed", "queued", "cancelled", "failed"]


def test_a_superseded_job_is_a_cancelled_event(
    jobs: JobStore, outbox: WebhookOutbox, tmp_path: Path
) -> None:
    path = _audio(tmp_path)
    old, _ = jobs.enqueue(path, JobOptions(), "api")
    path.write_bytes(b"RIFF" + bytes(200))  # new bytes: new work, the old job would only fail
    new, _ = jobs.enqueue(path, JobOptions(), "api")
    events: list[tuple[str, int]] = []
    outbox.route(lambda e, _c: events.append((e.type, e.job.id)) or [], DAY_S)
    assert events == [("queued", old.id), ("cancelled", old.id), ("queued", new.id)]


def test_a_rolled_back_change_leaves_no_event(
    jobs: JobStore, db_engine: Engine, tmp_path: Path
) -> None:
    job, _ = jobs.enqueue(_audio(tmp_path), JobOptions(), "api")
    claimed = jobs.claim("w1")
    assert claimed is not None
    before = _events(db_engine)

    def refused() -> list[str]:
        raise OSError("the disk is full")

    with pytest.raises(OSError, match="disk is full"):
        jobs.complete(job.id, claimed.attempts, Transcript("en", 1.0, 1.0, ()), publish=refused)
    assert _events(db_engine) == before
    assert jobs.get(job.id).status.value == "running"


def test_a_callback_gets_its_jobs_events_and_a_later_one_the_end_at_once(
    jobs: JobStore, outbox: WebhookOutbox, tmp_path: Path
) -> None:
    path = _audio(tmp_path)
    hook = CallbackRequest("https://notes.example.com/hook", SECRET, ("done", "failed"))
    job, created = jobs.enqueue(path, JobOptions(), "api", callback=hook)
    assert created
    claimed = jobs.claim("w1")
    assert claimed is not None
    jobs.complete(job.id, claimed.attempts, Transcript("en", 1.0, 1.0, ()))
    outbox.route(_everything, DAY_S)
    mine = [d for d in outbox.deliveries() if d.subscription == "request"]
    assert [(d.event, d.url) for d in mine] == [("done", hook.url)]

    # The same work asked again by another client: answered by the done job, whose end its
    # callback hears at once; asked again by the same URL, nothing more.
    other = CallbackRequest("https://other.example.com/hook", SECRET)
    again, created = jobs.enqueue(path, JobOptions(), "api", callback=other)
    assert (again.id, created) == (job.id, False)
    jobs.enqueue(path, JobOptions(), "api", callback=other)
    outbox.route(_everything, DAY_S)
    requested = [(d.event, d.url) for d in outbox.deliveries() if d.subscription == "request"]
    assert requested == [("done", other.url), ("done", hook.url)]  # newest first
    service_wide = [d.event for d in outbox.deliveries() if d.subscription == "service:all"]
    assert service_wide == ["done", "started", "queued"]  # the replay was for the callback only


def test_attempts_back_off_then_give_up_and_a_failed_one_is_sent_again(
    jobs: JobStore, outbox: WebhookOutbox, clock: Clock, tmp_path: Path
) -> None:
    jobs.enqueue(_audio(tmp_path), JobOptions(), "api")
    outbox.route(_everything, give_up_after_s=60)
    (delivery,) = outbox.claim_due(10, lease_s=30)
    assert delivery.attempts == 1
    assert outbox.claim_due(10, lease_s=30) == []  # held by its attempt
    after = outbox.record(delivery.id, 1, Outcome(False, 503, "HTTP 503", "busy"))
    assert after is not None and after.status == "pending"
    wait = (after.next_attempt_at - clock.now).total_seconds()
    assert 5 <= wait <= 10  # the first backoff, jittered between half and all of it
    assert outbox.next_due() == after.next_attempt_at
    assert outbox.claim_due(10, lease_s=30) == []
    clock.advance(wait)
    (again,) = outbox.claim_due(10, lease_s=30)
    for attempt in range(again.attempts, 10):
        recorded = outbox.record(again.id, attempt, Outcome(False, None, "cannot connect"))
        assert recorded is not None
        if recorded.status == "failed":
            break
        clock.advance((recorded.next_attempt_at - clock.now).total_seconds())
        (again,) = outbox.claim_due(10, lease_s=30)
    failed = outbox.get(delivery.id)
    assert failed.status == "failed" and failed.finished_at is not None
    assert failed.last_error == "cannot connect"
    assert [h["attempt"] for h in failed.history] == list(range(1, failed.attempts + 1))
    assert failed.history[0]["status"] == 503 and failed.history[0]["answer"] == "busy"
    assert outbox.next_due() is None

    resent = outbox.resend(delivery.id, give_up_after_s=60)
    assert (resent.status, resent.message_id, resent.body) == (
        "pending",
        delivery.message_id,
        delivery.body,
    )
    (back,) = outbox.claim_due(10, lease_s=30)
    done = outbox.record(back.id, back.attempts, Outcome(True, 204))
    assert done is not None and done.status == "delivered"
    with pytest.raises(InvalidTransition):
        outbox.resend(delivery.id, give_up_after_s=60)


def test_a_late_answer_of_a_lost_attempt_changes_nothing(
    jobs: JobStore, outbox: WebhookOutbox, clock: Clock, tmp_path: Path
) -> None:
    jobs.enqueue(_audio(tmp_path), JobOptions(), "api")
    outbox.route(_everything, DAY_S)
    (first,) = outbox.claim_due(10, lease_s=30)
    clock.advance(31)  # its sender was killed: the lease ends and the delivery is due again
    assert outbox.next_due() is not None
    (second,) = outbox.claim_due(10, lease_s=30)
    assert (second.id, second.attempts, second.message_id) == (first.id, 2, first.message_id)
    assert outbox.record(first.id, 1, Outcome(True, 200)) is None
    recorded = outbox.record(second.id, 2, Outcome(True, 200))
    assert recorded is not None and recorded.status == "delivered"


def test_two_routers_route_each_event_once(
    jobs: JobStore, db_engine: Engine, clock: Clock, tmp_path: Path
) -> None:
    ids = [jobs.enqueue(_audio(tmp_path, f"{n}.wav"), JobOptions(), "api")[0].id for n in range(40)]
    routers = [WebhookOutbox(db_engine, clock=clock) for _ in range(2)]
    go = threading.Barrier(2)

    def route(outbox: WebhookOutbox) -> None:
        go.wait()
        while outbox.route(_everything, DAY_S, limit=3):
            pass

    threads = [threading.Thread(target=route, args=(r,)) for r in routers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    deliveries = routers[0].deliveries(limit=1000)
    assert sorted(d.job_id or 0 for d in deliveries) == ids


def test_bodies_are_made_outside_the_write_lock(
    jobs: JobStore, outbox: WebhookOutbox, tmp_path: Path
) -> None:
    """A body may take a while (a long transcript): meanwhile the workers go on writing."""
    jobs.enqueue(_audio(tmp_path, "1.wav"), JobOptions(), "api")
    written: list[int] = []

    def slow(event: JobEvent, callbacks: Sequence[Callback]) -> list[NewDelivery]:
        job, _ = jobs.enqueue(_audio(tmp_path, f"during-{event.id}.wav"), JobOptions(), "api")
        written.append(job.id)
        return _everything(event, callbacks)

    assert outbox.route(slow, DAY_S) == 1
    assert len(written) == 1 and len(outbox.deliveries()) == 1


def test_an_event_that_cannot_be_read_holds_up_nothing(
    jobs: JobStore, outbox: WebhookOutbox, db_engine: Engine, tmp_path: Path
) -> None:
    for n in range(3):
        jobs.enqueue(_audio(tmp_path, f"{n}.wav"), JobOptions(), "api")
    with db_engine.begin() as conn:
        first, second, _third = conn.execute(select(EVENTS).order_by(EVENTS.c.id)).all()
        newer = {**first.job, "options": {**first.job["options"], "a_later_option": 1}}
        conn.execute(update(EVENTS).where(EVENTS.c.id == first.id).values(job=newer))
        conn.execute(update(EVENTS).where(EVENTS.c.id == second.id).values(job={"id": "x"}))
    assert outbox.route(_everything, DAY_S) == 3
    # A newer version's option is read as a job row's is; the unreadable one is dropped.
    assert len(outbox.deliveries()) == 2
    assert _events(db_engine) == 0


def test_a_late_callback_hears_only_what_comes_after_it(
    jobs: JobStore, outbox: WebhookOutbox, clock: Clock, tmp_path: Path
) -> None:
    path = _audio(tmp_path)
    job, _ = jobs.enqueue(path, JobOptions(), "api")
    claimed = jobs.claim("w1")
    assert claimed is not None
    jobs.complete(job.id, claimed.attempts, Transcript("en", 1.0, 1.0, ()))
    clock.advance(1)
    late = CallbackRequest("https://late.example.com/hook", SECRET)
    jobs.enqueue(path, JobOptions(), "api", callback=late)  # before the events are routed
    outbox.route(_everything, DAY_S)
    heard = [d.event for d in outbox.deliveries() if d.url == late.url]
    assert heard == ["done"]  # its end, once; not what was over before it asked


def test_a_job_forgotten_before_its_events_are_routed_still_has_them_delivered(
    jobs: JobStore, outbox: WebhookOutbox, db_engine: Engine, tmp_path: Path
) -> None:
    hook = CallbackRequest("https://notes.example.com/hook", SECRET, ("done",))
    job, _ = jobs.enqueue(_audio(tmp_path), JobOptions(), "upload", callback=hook)
    claimed = jobs.claim("w1")
    assert claimed is not None
    jobs.complete(job.id, claimed.attempts, Transcript("en", 1.0, 1.0, ()))
    with db_engine.begin() as conn:  # the retention's delete
        conn.execute(delete(JOBS).where(JOBS.c.id == job.id))
    outbox.route(_everything, DAY_S)
    assert sorted((d.subscription, d.event) for d in outbox.deliveries()) == [
        ("request", "done"),
        ("service:all", "done"),
        ("service:all", "queued"),
        ("service:all", "started"),
    ]
    outbox.forget(datetime.now(UTC))  # the callback goes once nothing needs it
    with db_engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(CALLBACKS)) == 0


def test_a_listing_leaves_bodies_and_secrets_out(
    jobs: JobStore, outbox: WebhookOutbox, tmp_path: Path
) -> None:
    jobs.enqueue(_audio(tmp_path), JobOptions(), "api")
    outbox.route(_everything, DAY_S)
    (listed,) = outbox.deliveries()
    assert (listed.body, listed.secret) == ("", "")
    assert outbox.get(listed.id).body and outbox.get(listed.id).secret == SECRET


def test_a_delivery_sent_again_backs_off_from_the_start(
    jobs: JobStore, outbox: WebhookOutbox, clock: Clock, tmp_path: Path
) -> None:
    jobs.enqueue(_audio(tmp_path), JobOptions(), "api")
    outbox.route(_everything, give_up_after_s=100)
    while True:
        (delivery,) = outbox.claim_due(1, lease_s=30)
        recorded = outbox.record(delivery.id, delivery.attempts, Outcome(False, 500, "HTTP 500"))
        assert recorded is not None
        if recorded.status == "failed":
            break
        clock.advance((recorded.next_attempt_at - clock.now).total_seconds())
    assert recorded.attempts >= 4
    outbox.resend(delivery.id, give_up_after_s=100)
    (again,) = outbox.claim_due(1, lease_s=30)
    after = outbox.record(again.id, again.attempts, Outcome(False, 500, "HTTP 500"))
    assert after is not None and after.status == "pending"
    assert (after.next_attempt_at - clock.now).total_seconds() <= 10  # the first wait again
