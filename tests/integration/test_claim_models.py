"""Models per job in the queue: a worker takes jobs for the models it holds before older jobs for
others (so a mixed queue does not make it load models back and forth), takes any job that has
waited long enough, and never one for a model it is not configured with."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from tests.helpers.jobs import Clock
from whisper_transcriber.db.job_store import MODEL_PREFERENCE_S, JobStore
from whisper_transcriber.db.store_base import JOBS
from whisper_transcriber.db.values import JobOptions, JobRecord


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed_store(db_engine: Engine, clock: Clock) -> JobStore:
    return JobStore(db_engine, clock=clock)


def queue(store: JobStore, clock: Clock, folder: Path, *models: str | None) -> list[JobRecord]:
    """One job per model named, a second apart, oldest first."""
    jobs = []
    for n, model in enumerate(models):
        path = folder / f"{n}-{model}.wav"
        path.write_bytes(f"audio {n}".encode())
        jobs.append(store.enqueue(path, JobOptions(model=model), "api")[0])
        clock.advance(1)
    return jobs


def test_a_worker_takes_jobs_for_what_it_holds_first(
    timed_store: JobStore, clock: Clock, tmp_path: Path
) -> None:
    accurate, plain, other_plain = queue(timed_store, clock, tmp_path, "accurate", None, None)
    known = [None, "accurate"]
    taken = timed_store.claim("holds-default", held=[None], known=known)
    assert taken is not None and taken.id == plain.id  # not the older job for "accurate"
    taken = timed_store.claim("holds-accurate", held=[None, "accurate"], known=known)
    assert taken is not None and taken.id == accurate.id  # the oldest, which it holds
    taken = timed_store.claim("holds-default", held=[None], known=known)
    assert taken is not None and taken.id == other_plain.id


def test_a_job_that_has_waited_long_is_taken_whatever_its_model(
    timed_store: JobStore, clock: Clock, tmp_path: Path
) -> None:
    accurate, plain = queue(timed_store, clock, tmp_path, "accurate", None)
    clock.advance(MODEL_PREFERENCE_S)
    taken = timed_store.claim("holds-default", held=[None], known=[None, "accurate"])
    assert taken is not None and taken.id == accurate.id
    taken = timed_store.claim("holds-default", held=[None], known=[None, "accurate"])
    assert taken is not None and taken.id == plain.id


def test_jobs_for_a_model_it_cannot_load_are_left_to_others(
    timed_store: JobStore, clock: Clock, tmp_path: Path
) -> None:
    (elsewhere,) = queue(timed_store, clock, tmp_path, "large-v3")
    clock.advance(MODEL_PREFERENCE_S * 10)
    assert timed_store.claim("this-machine", held=[None], known=[None, "accurate"]) is None
    taken = timed_store.claim("that-machine", held=[None], known=[None, "large-v3"])
    assert taken is not None and taken.id == elsewhere.id


def test_the_model_is_stored_where_the_claim_reads_it_and_default_is_none(
    timed_store: JobStore, clock: Clock, tmp_path: Path
) -> None:
    named, default, unnamed = queue(timed_store, clock, tmp_path, "accurate", "default", None)
    assert default.options.model is None  # naming the default is the same work as not
    with timed_store.engine.connect() as conn:
        stored = {row.id: row.model for row in conn.execute(select(JOBS.c.id, JOBS.c.model))}
    assert stored == {named.id: "accurate", default.id: None, unnamed.id: None}
    # Without a preference (an older worker's way), the oldest due job.
    taken = timed_store.claim("anyone")
    assert taken is not None and taken.id == named.id


def test_the_next_due_job_is_one_the_worker_could_claim(
    timed_store: JobStore, clock: Clock, tmp_path: Path
) -> None:
    """An idle worker sleeps until the next job it could take is due: a queued job for a model
    it cannot load must not make it look again and again (it would spin)."""
    (elsewhere,) = queue(timed_store, clock, tmp_path, "large-v3")
    assert timed_store.next_due([None, "accurate"]) is None
    assert timed_store.next_due([None, "large-v3"]) == elsewhere.run_after
    assert timed_store.next_due() == elsewhere.run_after
