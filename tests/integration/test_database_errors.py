"""Driver errors sorted at the job store's edge: a database that is away or busy is waited for
(DatabaseUnavailable); a statement it refuses fails at once (DatabaseRefused), and a worker's
result the database refuses fails that one job instead of being retried or waited for."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from tests.helpers.apps import app_for
from tests.helpers.media import FIXTURES
from tests.helpers.postgres import POSTGRES_ADMIN_URL
from tests.helpers.service import free_port
from whisper_transcriber.db.driver_errors import is_unique_violation, translated
from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.db.errors import DatabaseReadOnly, DatabaseRefused, DatabaseUnavailable
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.transcript import Segment, Transcript
from whisper_transcriber.db.values import JobOptions, RetryPolicy
from whisper_transcriber.worker import patience
from whisper_transcriber.worker.confinement import Confinement
from whisper_transcriber.worker.job_runner import run_job


def test_a_missing_table_is_refused_not_unavailable(db_engine: Engine, tmp_path: Path) -> None:
    """A database that answers "no such table" is there: waiting would change nothing."""
    store = JobStore(db_engine)
    with db_engine.begin() as conn:
        conn.execute(text("ALTER TABLE transcripts RENAME TO transcripts_elsewhere"))
    with pytest.raises(DatabaseRefused) as refused:
        store.transcript(1)
    assert "transcripts" in str(refused.value)


def test_a_refused_statement_is_a_clear_500_with_one_log_line(
    db_engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = JobStore(db_engine)
    with db_engine.begin() as conn:
        conn.execute(text("ALTER TABLE transcripts RENAME TO transcripts_elsewhere"))
    with app_for(store, tmp_path) as client, caplog.at_level(logging.INFO):
        response = client.get("/jobs/1/transcript")
    assert response.status_code == 500
    assert response.json()["detail"].startswith("the database refused it: ")
    assert "transcripts" in response.json()["detail"]
    [line] = [r for r in caplog.records if r.name == "whisper_transcriber.api.errors"]
    assert line.levelno == logging.ERROR and line.exc_info is None
    assert "GET /jobs/1/transcript: the database refused it" in line.getMessage()


def test_integrity_errors_other_than_the_insert_race_are_refusals(db_engine: Engine) -> None:
    with pytest.raises(IntegrityError) as orphan, db_engine.begin() as conn:
        conn.execute(
            text(
                'INSERT INTO transcript_segments (job_id, position, start, "end", text) '
                "VALUES (424242, 0, 0, 1, 'x')"
            )
        )
    assert not is_unique_violation(orphan.value)
    assert isinstance(translated(orphan.value), DatabaseRefused)
    scan = text("INSERT INTO inbox_scans (name, path, observer) VALUES ('a', '/a', 'native')")
    with db_engine.begin() as conn:
        conn.execute(scan)
    with pytest.raises(IntegrityError) as twice, db_engine.begin() as conn:
        conn.execute(scan)
    assert is_unique_violation(twice.value)


def test_a_pool_with_no_free_connection_is_unavailable(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=0.1)
    store = JobStore(engine)
    try:
        with (
            engine.connect(),  # the only connection, held
            pytest.raises(DatabaseUnavailable, match="no free database connection"),
        ):
            store.get(1)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_down_is_unavailable_and_a_nul_byte_is_refused(postgres_url: str) -> None:
    nowhere = make_engine(f"postgresql://root@127.0.0.1:{free_port()}/test")
    try:
        with pytest.raises(DatabaseUnavailable) as away:
            JobStore(nowhere).get(1)
        assert not isinstance(away.value, DatabaseRefused)
    finally:
        nowhere.dispose()
    engine = make_engine(postgres_url)
    try:
        with pytest.raises(DatabaseRefused, match="NUL"):
            JobStore(engine).outputs_of_source("a\x00b")
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_read_only_postgres_is_read_only_for_writes_and_ping(
    postgres_url: str, tmp_path: Path
) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    engine = make_engine(postgres_url)
    store = JobStore(engine)
    source = Path(shutil.copy(FIXTURES / "speech_a.wav", tmp_path))
    store.enqueue(source, JobOptions(), "test")
    store.ping()
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
    engine.dispose()  # new sessions read the setting
    try:
        with pytest.raises(DatabaseReadOnly, match="read-only"):
            store.ping()
        with pytest.raises(DatabaseReadOnly):
            store.claim("w1")
        assert store.get(1).status is JobStatus.QUEUED  # reads go on
    finally:
        engine.dispose()


class _NulEngine:
    """A model that hears a NUL byte: text PostgreSQL cannot store."""

    device, compute_type = "cpu", "int8"

    def transcribe(self, path: str, options: JobOptions, *args: Any, **kwargs: Any) -> Transcript:
        return Transcript(
            language="en",
            language_probability=0.9,
            duration=1.0,
            segments=(Segment(id=1, start=0.0, end=1.0, text=" nul \x00 here"),),
        )


@pytest.mark.postgres
def test_a_result_the_database_refuses_fails_its_job_at_once(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the refusal read as an outage, waited out for OUTCOME_PATIENCE_S (10 min), then
    the attempt was retried, to be refused again."""
    monkeypatch.setattr(patience, "OUTCOME_PATIENCE_S", 2.0)
    engine = make_engine(postgres_url)
    store = JobStore(engine, retry_policy=RetryPolicy(base_delay_s=0))
    try:
        source = Path(shutil.copy(FIXTURES / "speech_a.wav", tmp_path))
        store.enqueue(source, JobOptions(formats=("txt",)), "test")
        job = store.claim("w1")
        assert job is not None
        run_job(store, _NulEngine(), job, Confinement.of([tmp_path]))  # type: ignore[arg-type]
        failed = store.get(job.id)
        assert failed.status is JobStatus.FAILED, failed
        assert failed.attempts == 1
        assert (failed.error or "").startswith("the database refused the result: ")
        assert "NUL" in (failed.error or "")
    finally:
        engine.dispose()
