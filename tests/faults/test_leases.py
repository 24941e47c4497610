"""Leases: a job whose worker (or whole machine) vanished is recovered when its lease expires; a
worker that lost its lease and comes back late is refused (fencing): it overwrites no file and no
row. Real processes and real signals (SIGSTOP/SIGCONT), on SQLite and PostgreSQL; the workers run
the fake engine (tests/helpers/fake_engine.py), whose jobs finish when the test says so."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from datetime import timedelta
from pathlib import Path

import pytest

from tests.helpers.fake_engine import fake_engine_env, in_process, plan
from tests.helpers.media import FIXTURES, place
from tests.helpers.outputs import FORMATS, one_set_of_transcripts, temporaries
from tests.helpers.service import JOB_DEADLINE_S, running_service, service_env
from tests.helpers.waiting import wait_until
from whisper_transcriber.db.clock import utcnow
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.values import JobOptions, RetryPolicy
from whisper_transcriber.worker.confinement import Confinement
from whisper_transcriber.worker.job_runner import run_job

LEASE_S = "3"


def test_job_of_a_vanished_machine_runs_again_when_its_lease_expires(
    database_url: str, job_store: JobStore, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    source = place(FIXTURES / "speech_b.flac", inbox)
    queued, _ = job_store.enqueue(source, JobOptions(), "api")
    # Its lease is as short as the service's: the test waits for it to run out.
    vanished = JobStore(job_store.engine, lease_s=float(LEASE_S))
    claimed = vanished.claim("machine-that-burned-down:4242")
    assert claimed is not None and claimed.id == queued.id
    with running_service(
        "--database-url", database_url, "--inbox", inbox, "--workers", "1",
        cwd=tmp_path, env=fake_engine_env(service_env(LEASE_S=LEASE_S)),
    ) as service:  # fmt: skip
        done = service.wait_status(queued.id, "done", "failed")
        assert done["status"] == "done" and done["attempts"] == 2
        assert service.stop() == 0
    assert (
        f"job {queued.id}: lease expired: worker machine-that-burned-down:4242 stopped answering"
        in service.log.read_text()
    )
    assert one_set_of_transcripts(source)


def test_frozen_worker_that_lost_its_lease_stops_and_writes_nothing(
    database_url: str, job_store: JobStore, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    finish = tmp_path / "finish"
    source = plan(inbox / "long.wav", until=finish)
    with running_service(
        "--database-url", database_url, "--inbox", inbox, "--workers", "2",
        cwd=tmp_path, env=fake_engine_env(service_env(LEASE_S=LEASE_S)),
    ) as service:  # fmt: skip
        service.wait_for_workers(2)
        job_id = service.submit(source)
        first = wait_until(
            lambda: (job := service.job(job_id))["progress"] > 0 and job,
            JOB_DEADLINE_S,
            "the first attempt to make progress",
        )
        frozen = int(first["worker_id"].rsplit(":", 1)[1])
        os.kill(frozen, signal.SIGSTOP)  # alive but silent: its heartbeat stops with it
        finish.touch()  # attempt 2 finishes; so does attempt 1 the moment it wakes up
        try:
            done = service.wait_status(job_id, "done", "failed")
            assert done["status"] == "done" and done["attempts"] == 2
            written = {fmt: source.with_suffix(f".{fmt}").stat() for fmt in FORMATS}
            transcript = job_store.transcript(job_id)
        finally:
            # Killed already, most often: its supervisor saw attempt 2 take the job over
            # (test_cancel.py); on a machine that finishes attempt 2 first, it wakes up here.
            with contextlib.suppress(ProcessLookupError):
                os.kill(frozen, signal.SIGCONT)
        wait_until(
            lambda: (
                f"job {job_id}: attempt 1 " in (log := service.log.read_text())
                and ("no longer current" in log or "taken over" in log)
            ),
            JOB_DEADLINE_S,
            "the late worker to give its attempt up",
        )
        assert service.job(job_id)["status"] == "done"
        assert service.stop() == 0
    # Nothing of the late attempt reached a file or the database.
    for fmt, before in written.items():
        after = source.with_suffix(f".{fmt}").stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), fmt
    assert job_store.transcript(job_id) == transcript
    assert one_set_of_transcripts(source)
    assert not temporaries(inbox)


def test_late_finished_attempt_is_refused_and_publishes_nothing(
    database_url: str, job_store: JobStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The other order: attempt 1 lost its lease, attempt 2 finished, and only then does attempt 1
    finish its transcription (a worker cut off from the database, or frozen between its last
    heartbeat and its result). In one process, with the real database and the fake engine."""
    source = place(FIXTURES / "speech_a.wav", tmp_path / "media")
    engine = in_process()
    job_store.enqueue(source, JobOptions(), "api")
    late = job_store.claim("cut-off:1")
    assert late is not None
    # Its lease runs out (seen from a clock an hour on); another worker runs attempt 2 to the end.
    later = JobStore(
        job_store.engine,
        retry_policy=RetryPolicy(base_delay_s=0),
        clock=lambda: utcnow() + timedelta(hours=1),
    )
    assert [job.id for job in later.recover_expired()] == [late.id]
    current = later.claim("healthy:2")
    assert current is not None and current.attempts == 2
    run_job(job_store, engine, current, Confinement.of([tmp_path]))
    written = {fmt: source.with_suffix(f".{fmt}").stat() for fmt in FORMATS}
    transcript = job_store.transcript(late.id)

    with caplog.at_level(logging.INFO, logger="whisper_transcriber.worker.job_runner"):
        run_job(
            job_store, engine, late, Confinement.of([tmp_path])
        )  # the late attempt transcribes, then tries to finish
    # Refused at the fenced finish: the fake engine transcribes at once, before any look of the
    # heartbeat at the database could stop it mid-way.
    refused = f"job {late.id}: attempt 1 is no longer current; dropped its work"
    assert refused in caplog.text, caplog.text
    for fmt, before in written.items():
        after = source.with_suffix(f".{fmt}").stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), fmt
    assert job_store.transcript(late.id) == transcript
    assert job_store.get(late.id).status.value == "done"
    assert not temporaries(source.parent)
