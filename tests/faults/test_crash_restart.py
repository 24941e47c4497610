"""kill -9 of the whole service mid-batch, then a restart: every file is done exactly once, with
one set of transcripts and no half-written file left. On SQLite and PostgreSQL, with the fake
engine (the queue and the outputs are under test, not the model): the long job works until the
test lets it finish, after the restart."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.helpers.fake_engine import fake_engine_env, plan
from tests.helpers.media import FIXTURES, place
from tests.helpers.outputs import one_set_of_transcripts, temporaries
from tests.helpers.service import JOB_DEADLINE_S, running_service, service_env
from tests.helpers.waiting import wait_until
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.values import JobQuery

SHORT = ("speech_a.wav", "speech_b.flac", "speech_c.ogg")


def test_killed_service_resumes_the_batch_and_does_each_file_once(
    database_url: str, job_store: JobStore, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    finish = tmp_path / "finish"
    long = plan(inbox / "long.wav", until=finish)
    sources = [long] + [
        place(FIXTURES / name, inbox, f"{i:02d}-{name}") for i in range(4) for name in SHORT
    ]
    args = ("--database-url", database_url, "--inbox", inbox, "--workers", "2")
    # A lease far longer than the test: only the restart's own recovery can bring jobs back.
    env = fake_engine_env(service_env(SETTLE_S="0.5", LEASE_S="3600"))

    def statuses() -> Counter[str]:
        return Counter(job.status.value for job in job_store.list_jobs(JobQuery(), 100))

    with running_service(*args, cwd=tmp_path, env=env) as service:

        def mid_batch() -> bool:
            jobs = {job.source_path: job for job in job_store.list_jobs(JobQuery(), 100)}
            long_job = jobs.get(str(long))
            done = sum(job.status.value == "done" for job in jobs.values())
            return long_job is not None and long_job.status.value == "running" and done >= 1

        wait_until(mid_batch, JOB_DEADLINE_S, "the batch to be part-way through")
        service.kill_all()
    at_kill = statuses()
    assert at_kill["running"] >= 1 and at_kill["done"] >= 1, at_kill
    finish.touch()

    with running_service(*args, cwd=tmp_path, env=env, log_name="restart.log") as service:
        wait_until(
            lambda: statuses() == Counter(done=len(sources)),
            JOB_DEADLINE_S,
            f"all {len(sources)} files to be done",
        )
        assert service.stop() == 0
    assert "handed back" in service.log.read_text()

    jobs = job_store.list_jobs(JobQuery(), 100)
    assert Counter(job.source_path for job in jobs) == Counter(str(s) for s in sources)
    for job in jobs:
        assert job_store.transcript(job.id) is not None, job
    for source in sources:
        assert one_set_of_transcripts(source), source
    assert not temporaries(inbox)
