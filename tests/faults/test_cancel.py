"""A worker that does not stop when its attempt lost its job is killed: within about a second of
the supervisor seeing the job cancelled (or taken over by another attempt) and the worker still on
it, whatever the segment it is in. The job is not failed, nothing of the attempt is published, the
worker is replaced, and another attempt's work is left alone. A real service whose worker stalls
for good on one file, on SQLite and PostgreSQL: in the fake engine (tests/helpers/fake_engine.py:
a stuck decoder), or once its transcripts are staged (tests/faults/stall: a stalled disk). The
cancels come from this process, as from another machine."""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from pathlib import Path

from tests.helpers.fake_engine import fake_engine_env, plan
from tests.helpers.media import FIXTURES, place
from tests.helpers.outputs import FORMATS, one_set_of_transcripts, temporaries, transcript_files
from tests.helpers.service import (
    JOB_DEADLINE_S,
    STOP_TIMEOUT_S,
    Service,
    is_alive,
    running_service,
    service_env,
)
from tests.helpers.waiting import wait_until
from whisper_transcriber.db.clock import utcnow
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.transcript import Segment, Transcript
from whisper_transcriber.db.values import RetryPolicy
from whisper_transcriber.worker.lost_attempts import ABANDON_GRACE_S
from whisper_transcriber.worker.staging import stage_outputs

STALL_HOOK = Path(__file__).parent / "stall"  # its sitecustomize.py makes the worker stall


def stalling_env(name: str, at: str, **settings: str) -> dict[str, str]:
    """A service whose workers stall for good on the file called `name`, at `at`."""
    env = service_env(**settings)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(STALL_HOOK), env.get("PYTHONPATH"))))
    env.update(WT_STALL_ON=name, WT_STALL_AT=at)
    return env


def holder(service_job: dict[str, object]) -> int | None:
    """The pid of the worker holding a job the API shows, once it runs."""
    worker_id = service_job["worker_id"]
    if service_job["status"] != "running" or not isinstance(worker_id, str):
        return None
    return int(worker_id.rsplit(":", 1)[1])


def running_on(service: Service, job_id: int) -> int:
    """Once the job runs, the pid of its worker."""
    pid = wait_until(lambda: holder(service.job(job_id)), JOB_DEADLINE_S, "the job to run")
    assert pid is not None
    return pid


def test_cancelled_job_of_a_stuck_worker_is_stopped_and_the_next_job_runs(
    database_url: str, job_store: JobStore, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    stuck = place(FIXTURES / "speech_a.wav", inbox, "stuck.wav")
    after = place(FIXTURES / "speech_b.flac", inbox)
    with running_service(
        "--database-url", database_url, "--inbox", inbox, "--workers", "1",
        cwd=tmp_path, env=fake_engine_env(stalling_env(stuck.name, "staged")),
    ) as service:  # fmt: skip
        stuck_id = service.submit(stuck)
        # Transcribed, its transcripts written to temporaries, and then stuck for good.
        wait_until(
            lambda: len(temporaries(inbox)) == len(FORMATS),
            JOB_DEADLINE_S,
            "the stuck job's transcripts to be staged",
        )
        stuck_pid = holder(service.job(stuck_id))
        assert stuck_pid is not None
        after_id = service.submit(after)  # queued behind it: the only worker is stuck
        assert service.job(after_id)["status"] == "queued"

        job_store.cancel(stuck_id)
        done = service.wait_status(after_id, "done", "failed")
        assert done["status"] == "done", done
        assert not is_alive(stuck_pid)  # the next job needed the worker's slot back
        metrics = service.client.get("/metrics").text
        assert service.stop() == 0

    cancelled = job_store.get(stuck_id)
    assert cancelled.status is JobStatus.CANCELLED  # not failed, not queued again
    assert (cancelled.attempts, cancelled.error, cancelled.outputs) == (1, None, ())
    assert job_store.transcript(stuck_id) is None
    assert transcript_files(stuck) == []  # nothing published
    assert not temporaries(inbox)  # its staged transcripts removed
    assert one_set_of_transcripts(after)
    log = service.log.read_text()
    assert (
        f"job {stuck_id}: attempt 1 was cancelled; worker-1 (pid {stuck_pid}) had not stopped "
        f"{ABANDON_GRACE_S:g} s later and was killed (its replacement counts as a restart)"
    ) in log
    assert log.count(" ready: ") == 2  # the first worker and its replacement
    assert "whisper_transcriber_worker_restarts_total 1.0" in metrics
    assert f"job {stuck_id}: attempt 1 failed" not in log


def test_attempt_taken_over_is_stopped_and_the_other_attempt_left_alone(
    database_url: str, job_store: JobStore, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    stuck = plan(inbox / "stuck.wav", hang=True)
    with running_service(
        "--database-url", database_url, "--inbox", inbox, "--workers", "1",
        cwd=tmp_path, env=fake_engine_env(service_env()),
    ) as service:  # fmt: skip
        job_id = service.submit(stuck)
        stuck_pid = running_on(service, job_id)
        # Another machine takes the job over: seen from a clock an hour on, the lease ran out.
        elsewhere = JobStore(
            job_store.engine,
            retry_policy=RetryPolicy(base_delay_s=0),
            clock=lambda: utcnow() + timedelta(hours=1),
        )
        assert [job.id for job in elsewhere.recover_expired()] == [job_id]
        second = elsewhere.claim("elsewhere:1")
        assert second is not None and second.attempts == 2
        # Attempt 2 is half-way: its transcripts are staged, not yet published.
        transcript = Transcript("en", 1.0, 4.0, (Segment(0, 0.0, 4.0, " Taken over."),))
        staged = stage_outputs(transcript, stuck, FORMATS, None)
        staging = temporaries(inbox)
        assert len(staging) == len(FORMATS)

        wait_until(lambda: not is_alive(stuck_pid), JOB_DEADLINE_S, "the stuck worker to go")
        service.wait_for_workers(2)  # and its replacement to be ready
        held = job_store.get(job_id)
        assert (held.status, held.attempts, held.worker_id) == (
            JobStatus.RUNNING,
            2,
            "elsewhere:1",
        )
        assert sorted(temporaries(inbox)) == sorted(staging)  # attempt 2's files untouched
        done = job_store.complete(job_id, 2, transcript, publish=staged.publish)
        assert done.status is JobStatus.DONE
        assert service.stop() == 0

    assert one_set_of_transcripts(stuck)
    assert "Taken over." in stuck.with_suffix(".txt").read_text()
    assert not temporaries(inbox)
    log = service.log.read_text()
    assert (
        f"job {job_id}: attempt 1 was taken over by attempt 2; worker-1 (pid {stuck_pid}) had "
        "not stopped"
    ) in log
    assert "handed back" not in log and "removed the temporary" not in log


def test_job_cancelled_during_the_shutdown_grace_does_not_hold_it_up(
    database_url: str, job_store: JobStore, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    stuck = plan(inbox / "stuck.wav", hang=True)
    env = fake_engine_env(service_env(SHUTDOWN_GRACE_S="3600"))
    with running_service(
        "--database-url", database_url, "--inbox", inbox, "--workers", "1",
        cwd=tmp_path, env=env,
    ) as service:  # fmt: skip
        job_id = service.submit(stuck)
        stuck_pid = running_on(service, job_id)
        service.process.send_signal(signal.SIGTERM)
        wait_until(lambda: "shutting down" in service.log.read_text(), 30, "shutdown to begin")
        job_store.cancel(job_id)
        # An hour's grace for running jobs; this one was cancelled, so its worker is killed.
        assert service.process.wait(STOP_TIMEOUT_S) == 0
    assert not is_alive(stuck_pid)
    cancelled = job_store.get(job_id)
    assert (cancelled.status, cancelled.attempts) == (JobStatus.CANCELLED, 1)
    assert f"job {job_id}: attempt 1 was cancelled; worker-1 (pid {stuck_pid})" in (
        service.log.read_text()
    )
