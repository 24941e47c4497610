"""Instances whose clocks disagree share one PostgreSQL: leases are stamped and compared on the
database's clock, so a machine whose clock runs ahead does not steal live leases and jobs queued
by it are not held back on the others. Real PostgreSQL, clocks skewed by minutes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.helpers.media import FIXTURES, place
from tests.helpers.waiting import wait_until
from whisper_transcriber.db.clock import DatabaseClock, utcnow
from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.values import JobOptions, RetryPolicy

pytestmark = pytest.mark.postgres
SKEW = timedelta(minutes=5)
SLACK = timedelta(seconds=5)  # a loaded machine's round trips, and the test's own steps


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    yield engine
    engine.dispose()


def database_now(engine: Engine) -> datetime:
    with engine.connect() as conn:
        now: datetime = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
    return now


def skewed(engine: Engine, by: timedelta, lease_s: float = 60) -> JobStore:
    """An instance on a machine whose clock is `by` off."""
    return JobStore(
        engine,
        lease_s=lease_s,
        retry_policy=RetryPolicy(base_delay_s=0),
        clock=lambda: utcnow() + by,
        database_clock=True,
    )


def test_a_machine_ahead_steals_no_live_lease_and_one_behind_loses_no_job(
    engine: Engine, tmp_path: Path
) -> None:
    ahead, behind = skewed(engine, SKEW), skewed(engine, -SKEW)
    queued, _ = ahead.enqueue(place(FIXTURES / "speech_a.wav", tmp_path), JobOptions(), "api")
    job = behind.claim("behind:1")  # queued by the one ahead: due now, not in five minutes
    assert job is not None and job.id == queued.id
    assert job.lease_expires_at is not None
    assert abs(job.lease_expires_at - (database_now(engine) + timedelta(seconds=60))) < SLACK
    assert ahead.recover_expired() == []  # its clock says the lease ran out minutes ago
    assert behind.heartbeat(job.id, job.attempts, progress=0.5)
    assert ahead.recover_expired() == []
    assert ahead.get(job.id).status is JobStatus.RUNNING

    # A lease that did run out (by the database's clock) is recovered, by the one behind too.
    short = skewed(engine, SKEW, lease_s=1)
    other, _ = short.enqueue(place(FIXTURES / "speech_b.flac", tmp_path), JobOptions(), "api")
    claimed = short.claim("ahead:1")
    assert claimed is not None and claimed.id == other.id
    assert behind.recover_expired() == []
    recovered = wait_until(behind.recover_expired, 30, "the short lease to be recovered")
    assert [r.id for r in recovered] == [other.id]
    assert behind.get(job.id).status is JobStatus.RUNNING


def test_the_database_clock_follows_the_server_whatever_the_local_clock(engine: Engine) -> None:
    for skew in (SKEW, -SKEW, timedelta(hours=-30)):
        clock = DatabaseClock(engine, lambda skew=skew: utcnow() + skew)  # type: ignore[misc]
        assert abs(clock() - database_now(engine)) < SLACK
        assert abs(clock.offset + skew) < SLACK


def test_a_clock_given_to_move_time_is_used_as_it_is(engine: Engine) -> None:
    """Tests move time with clock=; only database_clock=True corrects it."""
    moved = utcnow() + timedelta(hours=1)
    assert JobStore(engine, clock=lambda: moved).clock() == moved
    assert abs(JobStore(engine).clock() - database_now(engine)) < SLACK
