"""What must not stop the service: a stored job option this version does not know (a newer
version wrote it, during a rolling upgrade), and an unexpected exception in the supervisor, the
change feed or a worker's claim loop: each is logged and the loop goes on."""

from __future__ import annotations

import logging
import os
import signal
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import JSON, Engine, bindparam, text

from tests.helpers.apps import app_for
from tests.helpers.fake_engine import FAKE_ENGINE, fake_engine_env, plan
from tests.helpers.media import FIXTURES, place
from tests.helpers.service import JOB_DEADLINE_S, running_service, service_env
from tests.helpers.waiting import wait_until
from whisper_transcriber.db.changes import JobChanges
from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.values import JobOptions, JobQuery, JobRecord, RetryPolicy
from whisper_transcriber.worker.confinement import Confinement
from whisper_transcriber.worker.engine import resolve_model
from whisper_transcriber.worker.job_runner import run_job
from whisper_transcriber.worker.process import WorkerConfig
from whisper_transcriber.worker.supervisor import WorkerPool

OPTIONS = JobOptions(language="en", formats=("txt", "srt"))


def store_options(engine: Engine, job_id: int, options: dict[str, Any]) -> None:
    """Overwrite a job's stored options with SQL, as another version of the service would."""
    statement = text("UPDATE jobs SET options = :options WHERE id = :id").bindparams(
        bindparam("options", type_=JSON)
    )
    with engine.begin() as conn:
        conn.execute(statement, {"options": options, "id": job_id})


def with_unknown_key(engine: Engine, job: JobRecord) -> None:
    store_options(
        engine, job.id, {**job.options.model_dump(mode="json"), "summarize": {"sentences": 2}}
    )


def test_an_unknown_stored_option_is_ignored_on_every_read(
    store: JobStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    job, _ = store.enqueue(place(FIXTURES / "speech_a.wav", tmp_path), OPTIONS, "api")
    with_unknown_key(store.engine, job)
    with caplog.at_level(logging.WARNING, logger="whisper_transcriber.db.values"):
        assert store.get(job.id).options == OPTIONS
        [listed] = store.list_jobs(JobQuery(), 10)
        assert listed.options == OPTIONS
        assert [changed.options for changed in store.changed_since(job.created_at)] == [OPTIONS]
        claimed = store.claim("w1")
        assert claimed is not None and claimed.options == OPTIONS
        assert [running.id for running in store.running()] == [job.id]
    unknown = [r for r in caplog.records if "summarize" in r.getMessage()]
    assert len(unknown) <= 1  # once per process (an earlier test may have said it already)
    with pytest.raises(ValidationError):  # everything but the stored rows stays strict
        JobOptions.model_validate({"summarize": True})


def test_the_api_still_refuses_options_it_does_not_know(store: JobStore, tmp_path: Path) -> None:
    source = place(FIXTURES / "speech_a.wav", tmp_path)
    with app_for(store, tmp_path) as client:
        as_json = client.post("/transcribe", json={"path": str(source), "summarize": True})
        assert as_json.status_code == 422, as_json.text
        assert "summarize" in as_json.json()["detail"]
        as_form = client.post(
            "/transcribe",
            files={"file": ("a.wav", source.read_bytes(), "audio/wav")},
            data={"summarize": "true"},
        )
        assert as_form.status_code == 422, as_form.text
    assert store.list_jobs(JobQuery(), 10) == []


def test_a_job_with_an_unknown_option_is_run_listed_and_supervised(
    database_url: str, tmp_path: Path
) -> None:
    """The worker claims it, the API lists it and the supervisor, after its worker is killed
    mid-job, reads it to fail the attempt: it is done on attempt 2 (the fake engine's job works
    until the test lets it finish)."""
    inbox = tmp_path / "inbox"
    finish = tmp_path / "finish"
    source = plan(inbox / "long.wav", until=finish)
    engine = make_engine(database_url)
    try:
        job, _ = JobStore(engine).enqueue(source, JobOptions(formats=("txt",)), "api")
        with_unknown_key(engine, job)
    finally:
        engine.dispose()
    with running_service(
        "--database-url", database_url, "--inbox", inbox, "--workers", "1",
        cwd=tmp_path, env=fake_engine_env(service_env()),
    ) as service:  # fmt: skip
        running = wait_until(
            lambda: (current := service.job(job.id))["progress"] > 0 and current,
            JOB_DEADLINE_S,
            "the job to be part-way through",
        )
        assert running["options"]["formats"] == ["txt"] and "summarize" not in running["options"]
        listed = service.client.get("/jobs")
        assert listed.status_code == 200 and listed.json()["items"][0]["id"] == job.id
        os.kill(int(running["worker_id"].rsplit(":", 1)[1]), signal.SIGKILL)
        finish.touch()
        done = service.wait_status(job.id, "done", "failed")
        assert (done["status"], done["attempts"]) == ("done", 2), done
        assert service.stop() == 0
    log = service.log.read_text()
    assert "stored job options hold summarize, unknown to this version" in log
    assert "died with exit code -9" in log and "Traceback" not in log
    assert source.with_suffix(".txt").exists()


def test_a_stored_option_value_this_version_refuses_fails_its_job_clearly(
    store: JobStore, tmp_path: Path
) -> None:
    """A format a newer version knows: the row still reads everywhere (with this version's
    defaults for what it refuses), and the worker fails the job instead of running it."""
    job, _ = store.enqueue(place(FIXTURES / "speech_a.wav", tmp_path), OPTIONS, "api")
    store_options(
        store.engine, job.id, {**job.options.model_dump(mode="json"), "formats": ["docx"]}
    )
    read = store.get(job.id)
    assert "unknown format 'docx'" in (read.options.unusable or "")
    assert read.options.language == "en"  # what it can read, it keeps
    assert [listed.id for listed in store.list_jobs(JobQuery(), 10)] == [job.id]
    assert [changed.id for changed in store.changed_since(job.created_at)] == [job.id]
    claimed = store.claim("w1")
    assert claimed is not None
    run_job(store, None, claimed, Confinement.of([tmp_path]))  # type: ignore[arg-type]
    failed = store.get(job.id)
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 1)
    assert (failed.error or "").startswith("this version cannot run the job's options (formats:")


def test_a_claim_that_fails_unexpectedly_is_logged_and_the_worker_goes_on(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A row whose claim cannot be read back (a creation time that is not a time): the worker
    logs it (the traceback once), tries again a second later, and never dies of it; once the row
    is repaired its job runs, and so does the one queued behind it."""
    inbox = tmp_path / "inbox"
    engine = make_engine(sqlite_url)
    try:
        store = JobStore(engine)
        odd, _ = store.enqueue(place(FIXTURES / "speech_a.wav", inbox), OPTIONS, "api")
        good, _ = store.enqueue(place(FIXTURES / "speech_b.flac", inbox), OPTIONS, "api")
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE jobs SET created_at = 'garbage' WHERE id = :id"), {"id": odd.id}
            )
        with running_service(
            "--database-url", sqlite_url, "--inbox", inbox, "--workers", "1",
            cwd=tmp_path, env=service_env(),
        ) as service:  # fmt: skip
            wait_until(
                lambda: service.log.read_text().count("claiming failed") >= 2,
                JOB_DEADLINE_S,
                "the worker to try its claim twice",
            )
            with engine.begin() as conn:
                conn.execute(
                    text("UPDATE jobs SET created_at = run_after WHERE id = :id"), {"id": odd.id}
                )
            for job_id in (odd.id, good.id):
                assert service.wait_status(job_id, "done", "failed")["status"] == "done"
            metrics = service.client.get("/metrics").text
            assert "whisper_transcriber_worker_restarts_total 0.0" in metrics
            assert service.stop() == 0
    finally:
        engine.dispose()
    log = service.log.read_text()
    assert "claiming failed: ValueError: Invalid isoformat string: 'garbage'" in log
    # The traceback once (the change feed, reading the same row, logs its own once too).
    assert log.count("in worker_main\n    job = store.claim(") == 1
    assert log.count("in _run\n    changed = self._read_all(") <= 1


class _Surprising(JobStore):
    """A store whose named method raises once, as a bug would."""

    def __init__(self, engine: Engine, method: str) -> None:
        super().__init__(engine, retry_policy=RetryPolicy(base_delay_s=0))
        self.surprise = method

    def __getattribute__(self, name: str) -> Any:
        if name != "surprise" and name == self.surprise:
            self.surprise = ""
            raise RuntimeError(f"surprise in {name}")
        return super().__getattribute__(name)


def fake_engine_config(database_url: str, media: Path) -> WorkerConfig:
    """One worker's settings on the fake engine, whose job works until the pool stops."""
    return WorkerConfig(
        database_url=database_url,
        model=resolve_model("bundled"),
        device="cpu",
        compute_type="int8",
        threads=1,
        lease_s=60,
        poll_interval_s=1,
        retry_policy=RetryPolicy(base_delay_s=0),
        confinement=Confinement.of([media]),
        engine=FAKE_ENGINE,
    )


def test_the_supervisor_survives_an_unexpected_error(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker dies mid-job and reading the jobs it held fails with a surprise: the next tick
    tries again, the attempt is failed and the replacement runs attempt 2 (on the fake engine,
    whose job works until the pool stops)."""
    engine = make_engine(sqlite_url)
    store = _Surprising(engine, "")
    source = plan(tmp_path / "media" / "long.wav", until=tmp_path / "never")
    job, _ = store.enqueue(source, OPTIONS, "api")
    pool = WorkerPool(fake_engine_config(sqlite_url, tmp_path), 1, store, job_timeout_s=600)
    pool.start()
    try:

        def part_way() -> JobRecord | None:
            current = store.get(job.id)
            return current if current.progress > 0 else None

        running = wait_until(part_way, JOB_DEADLINE_S, "the job to be part-way through")
        assert running is not None
        store.surprise = "running"  # what the supervisor reads to give up the dead one's jobs
        with caplog.at_level(logging.INFO, logger="whisper_transcriber.worker.supervisor"):
            os.kill(int((running.worker_id or ":0").rsplit(":", 1)[1]), signal.SIGKILL)
            wait_until(lambda: store.get(job.id).attempts == 2, JOB_DEADLINE_S, "attempt 2")
        assert pool.failure is None and pool.restarts == 1
        [surprise] = [r for r in caplog.records if "surprise in running" in r.getMessage()]
        assert surprise.levelno == logging.ERROR and surprise.exc_info is not None
        assert "worker process died (exit code -9)" in (store.get(job.id).error or "")
    finally:
        pool.stop(0)
        engine.dispose()


def test_the_change_feed_survives_an_unexpected_error(
    db_engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _Surprising(db_engine, "changed_since")
    seen: list[JobRecord] = []
    arrived = threading.Event()

    def on_change(job: JobRecord) -> None:
        seen.append(job)
        arrived.set()

    changes = JobChanges(store, on_change)
    with caplog.at_level(logging.ERROR, logger="whisper_transcriber.db.changes"):
        changes.start()
        try:
            job, _ = store.enqueue(place(FIXTURES / "speech_a.wav", tmp_path), OPTIONS, "api")
            changes.poke()
            assert arrived.wait(timedelta(seconds=30).total_seconds()), "no change came"
        finally:
            changes.stop()
    assert [change.id for change in seen] == [job.id] and seen[0].status is JobStatus.QUEUED
    assert any("reading job changes failed" in r.getMessage() for r in caplog.records)


def test_the_pool_counts_busy_workers_without_waiting_on_their_lock(
    sqlite_url: str, tmp_path: Path
) -> None:
    """/metrics and /status count busy workers while a worker holds the lock it shares with the
    supervisor (as one killed in the middle of reporting its job would, for ever): the count
    reads past it, so that no request waits on a worker."""
    engine = make_engine(sqlite_url)
    store = JobStore(engine)
    source = plan(tmp_path / "media" / "long.wav", until=tmp_path / "never")
    job, _ = store.enqueue(source, OPTIONS, "api")
    pool = WorkerPool(fake_engine_config(sqlite_url, tmp_path), 1, store, job_timeout_s=600)
    pool.start()
    try:
        wait_until(lambda: store.get(job.id).progress > 0, JOB_DEADLINE_S, "the job to run")
        counted: list[int] = []
        lock = pool._shared.slots[0].link.job_id.get_lock()
        with lock:  # held here as the worker would hold it
            counter = threading.Thread(target=lambda: counted.append(pool.busy()), daemon=True)
            counter.start()
            counter.join(30)
            assert counted == [1], "counting busy workers waited on a worker's lock"
    finally:
        pool.stop(0)
        engine.dispose()
