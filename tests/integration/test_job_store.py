"""The queue's operations on a real SQLite file and the real PostgreSQL."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.helpers.jobs import Clock
from whisper_transcriber.db.errors import InvalidTransition, JobNotFound, LeaseLost
from whisper_transcriber.db.identity import UNKNOWN
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.transcript import Segment, Transcript
from whisper_transcriber.db.values import JobOptions, RetryPolicy

OPTIONS = JobOptions()
TRANSCRIPT = Transcript(
    language="en",
    language_probability=0.99,
    duration=2.0,
    segments=(Segment(id=1, start=0.0, end=2.0, text=" Hello there."),),
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed_store(db_engine: Engine, clock: Clock) -> JobStore:
    policy = RetryPolicy(base_delay_s=10, max_delay_s=100)
    return JobStore(db_engine, lease_s=60, max_attempts=3, retry_policy=policy, clock=clock)


def make_file(folder: Path, name: str, content: bytes = b"audio") -> Path:
    path = folder / name
    path.write_bytes(content)
    return path


def test_enqueue_same_unchanged_file_gives_back_its_job(store: JobStore, tmp_path: Path) -> None:
    path = make_file(tmp_path, "a.wav")
    first, created = store.enqueue(path, OPTIONS, "cli")
    again, created_again = store.enqueue(tmp_path / "." / "a.wav", OPTIONS, "api")
    assert created and not created_again
    assert again.id == first.id
    assert again.origin == "cli"
    assert first.source_path == str(path.resolve())
    assert first.status is JobStatus.QUEUED and first.attempts == 0


def test_enqueue_follows_symlinks_to_the_same_job(store: JobStore, tmp_path: Path) -> None:
    path = make_file(tmp_path, "a.wav")
    link = tmp_path / "link.wav"
    link.symlink_to(path)
    first, _ = store.enqueue(path, OPTIONS, "cli")
    via_link, created = store.enqueue(link, OPTIONS, "cli")
    assert not created and via_link.id == first.id


def test_changed_file_is_a_new_job(store: JobStore, tmp_path: Path) -> None:
    path = make_file(tmp_path, "a.wav")
    first, _ = store.enqueue(path, OPTIONS, "cli")
    path.write_bytes(b"longer audio")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second, created = store.enqueue(path, OPTIONS, "cli")
    assert created and second.id != first.id
    # The older version's queued job would only fail ("changed after it was queued"): it is
    # cancelled with a note saying why.
    superseded = store.get(first.id)
    assert superseded.status is JobStatus.CANCELLED
    assert superseded.note == f"superseded by job {second.id}: the file changed"
    assert store.get(second.id).status is JobStatus.QUEUED


def test_a_new_version_leaves_ended_and_running_jobs_alone(store: JobStore, tmp_path: Path) -> None:
    path = make_file(tmp_path, "a.wav")
    done, _ = store.enqueue(path, OPTIONS, "cli")
    claimed = store.claim("w")
    assert claimed is not None
    store.complete(done.id, claimed.attempts, TRANSCRIPT)
    path.write_bytes(b"second version")
    running, _ = store.enqueue(path, OPTIONS, "cli")
    assert store.claim("w") is not None
    path.write_bytes(b"the third version")
    store.enqueue(path, OPTIONS, "cli")
    assert store.get(done.id).status is JobStatus.DONE
    assert store.get(running.id).status is JobStatus.RUNNING  # its worker finds out itself


def test_same_bytes_at_two_paths_are_two_jobs(store: JobStore, tmp_path: Path) -> None:
    a, _ = store.enqueue(make_file(tmp_path, "a.wav"), OPTIONS, "cli")
    b, created = store.enqueue(make_file(tmp_path, "b.wav"), OPTIONS, "cli")
    assert created and a.id != b.id


def test_missing_file_is_recorded_for_its_worker_to_fail(store: JobStore, tmp_path: Path) -> None:
    job, created = store.enqueue(tmp_path / "nope.wav", OPTIONS, "cli")
    assert created and job.source_size == UNKNOWN


def test_claim_takes_oldest_with_a_lease(
    timed_store: JobStore, clock: Clock, tmp_path: Path
) -> None:
    first, _ = timed_store.enqueue(make_file(tmp_path, "1.wav"), OPTIONS, "cli")
    clock.advance(1)
    second, _ = timed_store.enqueue(make_file(tmp_path, "2.wav"), OPTIONS, "cli")
    claimed = timed_store.claim("w1")
    assert claimed is not None and claimed.id == first.id
    assert claimed.status is JobStatus.RUNNING
    assert claimed.attempts == 1 and claimed.worker_id == "w1"
    assert claimed.lease_expires_at == clock.now + timedelta(seconds=60)
    next_claim = timed_store.claim("w2")
    assert next_claim is not None and next_claim.id == second.id
    assert timed_store.claim("w3") is None


def test_heartbeat_extends_lease_and_records_progress(
    timed_store: JobStore, clock: Clock, tmp_path: Path
) -> None:
    timed_store.enqueue(make_file(tmp_path, "a.wav"), OPTIONS, "cli")
    job = timed_store.claim("w1")
    assert job is not None
    clock.advance(30)
    assert timed_store.heartbeat(job.id, job.attempts, progress=0.5)
    current = timed_store.get(job.id)
    assert current.progress == 0.5
    assert current.lease_expires_at == clock.now + timedelta(seconds=60)
    assert not timed_store.heartbeat(job.id, job.attempts + 1)


def test_complete_stores_transcript_and_outputs(store: JobStore, tmp_path: Path) -> None:
    store.enqueue(make_file(tmp_path, "a.wav"), OPTIONS, "cli")
    job = store.claim("w1")
    assert job is not None
    done = store.complete(job.id, job.attempts, TRANSCRIPT, publish=lambda: [tmp_path / "a.txt"])
    assert done.status is JobStatus.DONE and done.progress == 1.0
    assert done.outputs == (str(tmp_path / "a.txt"),)
    assert done.finished_at is not None and done.worker_id is None
    assert store.transcript(job.id) == TRANSCRIPT


def test_stale_attempt_cannot_finish_anything(
    timed_store: JobStore, clock: Clock, tmp_path: Path
) -> None:
    timed_store.enqueue(make_file(tmp_path, "a.wav"), OPTIONS, "cli")
    stale = timed_store.claim("w1")
    assert stale is not None
    clock.advance(61)
    [recovered] = timed_store.recover_expired()
    assert recovered.status is JobStatus.QUEUED and "lease expired" in (recovered.error or "")
    clock.advance(10)
    current = timed_store.claim("w2")
    assert current is not None and current.attempts == 2

    published: list[str] = []
    with pytest.raises(LeaseLost):
        timed_store.complete(
            stale.id, stale.attempts, TRANSCRIPT, publish=lambda: published.append("x") or []
        )
    assert published == []  # the late worker never got to rename its files into place
    with pytest.raises(LeaseLost):
        timed_store.fail(stale.id, stale.attempts, "late failure")
    assert not timed_store.heartbeat(stale.id, stale.attempts)
    assert timed_store.get(stale.id).worker_id == "w2"
    assert timed_store.transcript(stale.id) is None


def test_publish_failure_rolls_back_completion(store: JobStore, tmp_path: Path) -> None:
    store.enqueue(make_file(tmp_path, "a.wav"), OPTIONS, "cli")
    job = store.claim("w1")
    assert job is not None

    def disk_full() -> list[str]:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        store.complete(job.id, job.attempts, TRANSCRIPT, publish=disk_full)
    assert store.get(job.id).status is JobStatus.RUNNING
    assert store.transcript(job.id) is None


def test_failures_back_off_then_give_up(
    timed_store: JobStore, clock: Clock, tmp_path: Path
) -> None:
    timed_store.enqueue(make_file(tmp_path, "a.wav"), OPTIONS, "cli")
    delays = []
    for attempt in (1, 2):
        job = timed_store.claim("w1")
        assert job is not None and job.attempts == attempt
        queued = timed_store.fail(job.id, attempt, f"boom {attempt}")
        assert queued.status is JobStatus.QUEUED
        delays.append((queued.run_after - clock.now).total_seconds())
        assert timed_store.claim("w1") is None  # not due before its backoff
        clock.advance(delays[-1])
    assert delays == [10, 20]
    job = timed_store.claim("w1")
    assert job is not None and job.attempts == 3
    failed = timed_store.fail(job.id, 3, "boom 3")
    assert failed.status is JobStatus.FAILED and failed.error == "boom 3"
    assert failed.finished_at == clock.now


def test_permanent_failure_does_not_retry(store: JobStore, tmp_path: Path) -> None:
    store.enqueue(make_file(tmp_path, "a.wav"), OPTIONS, "cli")
    job = store.claim("w1")
    assert job is not None
    failed = store.fail(job.id, job.attempts, "cannot decode", retryable=False)
    assert failed.status is JobStatus.FAILED and failed.attempts == 1


def test_cancel_queued_and_running(store: JobStore, tmp_path: Path) -> None:
    queued, _ = store.enqueue(make_file(tmp_path, "a.wav"), OPTIONS, "cli")
    assert store.cancel(queued.id).status is JobStatus.CANCELLED
    assert store.cancel(queued.id).status is JobStatus.CANCELLED  # idempotent
    store.enqueue(make_file(tmp_path, "b.wav"), OPTIONS, "cli")
    running = store.claim("w1")
    assert running is not None
    store.cancel(running.id)
    assert not store.heartbeat(running.id, running.attempts)
    with pytest.raises(LeaseLost):
        store.complete(running.id, running.attempts, TRANSCRIPT)


def test_cancel_finished_job_is_refused(store: JobStore, tmp_path: Path) -> None:
    store.enqueue(make_file(tmp_path, "a.wav"), OPTIONS, "cli")
    job = store.claim("w1")
    assert job is not None
    store.complete(job.id, job.attempts, TRANSCRIPT)
    with pytest.raises(InvalidTransition):
        store.cancel(job.id)
    with pytest.raises(InvalidTransition):
        store.retry(job.id)


def test_retry_gives_a_fresh_allowance(timed_store: JobStore, tmp_path: Path) -> None:
    timed_store.enqueue(make_file(tmp_path, "a.wav"), OPTIONS, "cli")
    job = timed_store.claim("w1")
    assert job is not None
    timed_store.fail(job.id, job.attempts, "bad", retryable=False)
    retried = timed_store.retry(job.id)
    assert retried.status is JobStatus.QUEUED and retried.error is None
    assert retried.max_attempts == job.attempts + 3
    again = timed_store.claim("w1")
    assert again is not None and again.attempts == 2


def test_release_hands_back_without_using_an_attempt(store: JobStore, tmp_path: Path) -> None:
    store.enqueue(make_file(tmp_path, "a.wav"), OPTIONS, "cli")
    job = store.claim("w1")
    assert job is not None
    released = store.release(job.id, job.attempts)
    assert released.status is JobStatus.QUEUED
    assert released.max_attempts - released.attempts == job.max_attempts
    again = store.claim("w2")
    assert again is not None and again.id == job.id and again.attempts == 2


def test_recover_leaves_live_leases_alone(
    timed_store: JobStore, clock: Clock, tmp_path: Path
) -> None:
    timed_store.enqueue(make_file(tmp_path, "a.wav"), OPTIONS, "cli")
    job = timed_store.claim("w1")
    assert job is not None
    clock.advance(59)
    assert timed_store.recover_expired() == []
    assert timed_store.get(job.id).status is JobStatus.RUNNING


def test_unknown_job(store: JobStore) -> None:
    with pytest.raises(JobNotFound):
        store.get(12345)
    with pytest.raises(JobNotFound):
        store.cancel(12345)


def test_options_round_trip(store: JobStore, tmp_path: Path) -> None:
    options = JobOptions(
        language="de", task="translate", vad_filter=True, formats=("srt",), output_dir="/out"
    )
    job, _ = store.enqueue(make_file(tmp_path, "a.wav"), options, "api")
    assert store.get(job.id).options == options
