"""Scale-out on one PostgreSQL: two service instances (separate process trees) share a batch and
do each job exactly once, also when one of them is killed mid-batch (their workers on the fake
engine: the sharing is under test, not the model); roles split across instances."""

from __future__ import annotations

import os
import re
import signal
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from tests.helpers.fake_engine import fake_engine_env, plan
from tests.helpers.media import FIXTURES, place
from tests.helpers.outputs import one_set_of_transcripts, temporaries
from tests.helpers.service import Service, running_service, service_env, worker_processes
from tests.helpers.waiting import wait_until
from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.values import JobQuery, JobRecord

pytestmark = pytest.mark.postgres

BATCH = 100
BATCH_DEADLINE_S = 600
# The fake engine's jobs: most are quick; every LONG_EVERY-th takes LONG_JOB_S, so that a worker
# can be caught in the middle of one (working on it, before it writes any transcript), as a
# machine dies in the middle of transcribing.
SHORT_JOB_S = 0.02
LONG_JOB_S = 1.0
LONG_EVERY = 10
DONE_LINE = re.compile(r"job (\d+): done, ")


def done_by(service: Service) -> list[int]:
    return [int(job_id) for job_id in DONE_LINE.findall(service.log.read_text())]


def freeze_mid_job(service: Service, store: JobStore, long: set[str]) -> list[JobRecord]:
    """SIGSTOP the service's workers at a moment one of them is in the first half of a long job
    (so still working on it: nothing written yet); the jobs they hold."""

    def frozen_holding() -> list[JobRecord] | None:
        workers = worker_processes(service.process.pid)
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        now = store.clock()
        held = [
            job
            for job in store.running()
            if job.worker_id and int(job.worker_id.rsplit(":", 1)[1]) in workers
        ]
        if any(
            job.source_path in long
            and job.started_at is not None
            and now - job.started_at < timedelta(seconds=LONG_JOB_S / 2)
            for job in held
        ):
            return held
        for pid in workers:  # not in the middle of a long job: let them go on and look again
            os.kill(pid, signal.SIGCONT)
        return None

    return wait_until(frozen_holding, 60, "a worker of the instance to hold a job")


def test_two_instances_share_a_batch_and_survive_losing_one(
    postgres_url: str, tmp_path: Path
) -> None:
    store = JobStore(make_engine(postgres_url))
    inbox = tmp_path / "inbox"
    sources = [
        plan(inbox / f"{i:03d}.wav", work_s=SHORT_JOB_S if i % LONG_EVERY else LONG_JOB_S)
        for i in range(BATCH)
    ]
    long = {str(source) for i, source in enumerate(sources) if i % LONG_EVERY == 0}
    # Both instances watch the same inbox: each file still becomes one job.
    args = ("--database-url", postgres_url, "--inbox", inbox, "--workers", "1")
    env = fake_engine_env(service_env(SETTLE_S="0.5", LEASE_S="5"))
    with (
        running_service(*args, cwd=tmp_path, env=env, log_name="a.log") as first,
        running_service(*args, cwd=tmp_path, env=env, log_name="b.log") as second,
    ):
        wait_until(
            lambda: len(done_by(first)) >= 10 and len(done_by(second)) >= 10,
            BATCH_DEADLINE_S,
            "both instances to have done some jobs",
        )
        held = freeze_mid_job(first, store, long)
        first.kill_all()  # kill -9 of its whole process tree, mid-job
        wait_until(
            lambda: (
                Counter(job.status.value for job in store.list_jobs(JobQuery(), BATCH + 10))
                == Counter(done=BATCH)
            ),
            BATCH_DEADLINE_S,
            f"all {BATCH} jobs to be done",
        )
        assert second.stop() == 0

    jobs = store.list_jobs(JobQuery(), BATCH + 10)
    assert sorted(job.source_path for job in jobs) == sorted(str(s) for s in sources)
    done_lines = Counter(done_by(first) + done_by(second))
    assert sorted(done_lines) == sorted(job.id for job in jobs)
    assert set(done_lines.values()) == {1}  # each job finished exactly once, by one instance
    for job in held:
        assert job.id in done_by(second)
        assert store.get(job.id).attempts == 2  # the lost attempt, then the other instance's
    assert all(one_set_of_transcripts(source) for source in sources)
    assert not temporaries(inbox)
    store.engine.dispose()


@pytest.mark.parametrize("database", ["postgres", "sqlite"])
def test_roles_split_across_instances(
    database: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """An api+watch instance without workers, and a work-only instance without HTTP. Its idle
    worker polls once in 600 s here: the job reaches it through PostgreSQL's channel, or on
    SQLite through the database file, which its change feed watches."""
    database_url: str = request.getfixturevalue(f"{database}_url")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    env = service_env(SETTLE_S="0.5")
    with (
        running_service(
            "--database-url", database_url, "--inbox", inbox, "--role", "api,watch",
            cwd=tmp_path, env=env, log_name="front.log",
        ) as front,
        running_service(
            "--database-url", database_url, "--role", "work", "--workers", "1",
            cwd=tmp_path, env=env, log_name="worker.log", wait_healthy=False,
        ) as back,
    ):  # fmt: skip
        back.wait_for_workers(1)
        assert not worker_processes(front.process.pid)
        assert front.client.get("/ready").json() == {"ready": True, "problems": []}
        source = place(FIXTURES / "speech_a.wav", inbox)
        job_id = wait_until(
            lambda: front.client.get("/jobs").json()["items"], 60, "the watcher to queue a job"
        )[0]["id"]
        assert front.wait_status(job_id, "done", "failed")["status"] == "done"
        assert f"job {job_id}: done" in back.log.read_text()
        assert "roles: work" in back.log.read_text()
        assert "whisper_transcriber_worker_state" not in front.client.get("/metrics").text
        assert back.stop() == 0
        assert front.stop() == 0
    assert one_set_of_transcripts(source)
