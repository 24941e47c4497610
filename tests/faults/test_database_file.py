"""A SQLite file deleted or replaced under a running service, and a database that refuses writes:
/ready answers 503 with the reason, claiming stops, and no empty database appears at the path."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from tests.helpers.apps import app_for
from tests.helpers.media import FIXTURES, place
from tests.helpers.service import running_service, service_env, unprivileged
from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.db.errors import DatabaseReadOnly, DatabaseUnavailable
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.migrate import upgrade
from whisper_transcriber.db.values import JobOptions


@pytest.fixture
def database(tmp_path: Path) -> Path:
    folder = tmp_path / "db"
    folder.mkdir()
    return folder / "jobs.db"


def migrated(path: Path) -> str:
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def queued_store(database: Path, tmp_path: Path) -> JobStore:
    store = JobStore(make_engine(migrated(database)))
    store.enqueue(place(FIXTURES / "speech_a.wav", tmp_path / "media"), JobOptions(), "api")
    return store


def test_a_deleted_sqlite_file_is_not_ready_and_is_never_recreated(
    database: Path, tmp_path: Path
) -> None:
    store = queued_store(database, tmp_path)
    try:
        with app_for(store, tmp_path) as client:
            assert client.get("/ready").status_code == 200
            database.unlink()  # open connections go on with the old inode, unseen
            ready = client.get("/ready")
            assert ready.status_code == 503, ready.text
            [problem] = ready.json()["problems"]
            assert problem.startswith("database unreachable: the database file ")
            assert "was deleted while the service ran" in problem
            with pytest.raises(DatabaseUnavailable, match="was deleted"):
                store.claim("w1")
            assert client.get("/jobs").status_code == 503
            store.engine.dispose()  # even with no connection left to reuse
            with pytest.raises(DatabaseUnavailable, match="was deleted"):
                store.claim("w1")
            assert client.get("/ready").status_code == 503
        assert not database.exists()  # no empty database was made in its place
    finally:
        store.engine.dispose()


def test_a_replaced_sqlite_file_is_not_ready_and_its_jobs_are_not_claimed(
    database: Path, tmp_path: Path
) -> None:
    store = queued_store(database, tmp_path)
    other = tmp_path / "other.db"
    migrated(other)
    try:
        with app_for(store, tmp_path) as client:
            assert client.get("/ready").status_code == 200
            os.replace(other, database)  # a restore, a sync tool, another service's file
            ready = client.get("/ready")
            assert ready.status_code == 503, ready.text
            assert "was replaced by another file" in ready.json()["problems"][0]
            with pytest.raises(DatabaseUnavailable, match="replaced"):
                store.claim("w1")
            source = place(FIXTURES / "speech_b.flac", tmp_path / "media")
            with pytest.raises(DatabaseUnavailable, match="replaced"):
                store.enqueue(source, JobOptions(), "api")
    finally:
        store.engine.dispose()


def test_a_database_that_refuses_writes_is_not_ready_and_claims_stop(
    database: Path, tmp_path: Path
) -> None:
    """As a read-only file would, without needing a user that chmod binds (tests may run as
    root): every new connection has PRAGMA query_only."""
    store = queued_store(database, tmp_path)
    try:
        with app_for(store, tmp_path) as client:
            assert client.get("/ready").status_code == 200

            @event.listens_for(store.engine, "connect")
            def _read_only(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.execute("PRAGMA query_only = 1")

            store.engine.dispose()
            ready = client.get("/ready")
            assert ready.status_code == 503, ready.text
            assert ready.json()["problems"] == [
                "database refuses writes: attempt to write a readonly database"
            ]
            with pytest.raises(DatabaseReadOnly):
                store.claim("w1")
            assert client.get("/jobs").status_code == 200  # reads go on
    finally:
        store.engine.dispose()


def test_the_real_service_will_not_start_on_a_read_only_sqlite_file_and_folder(
    database: Path, tmp_path: Path
) -> None:
    """chmod a-w on the file and its folder, the service run without root's override of file
    permissions (setpriv, as tests/faults does; nothing when not root): one line naming
    database_url, exit 2, before anything starts. (While it runs, a chmod leaves its open
    connections writable: the database does take writes.)"""
    url = migrated(database)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    paths = [database, database.parent]
    for path in paths:
        path.chmod(path.stat().st_mode & ~0o222)
    try:
        with running_service(
            "--role", "api", "--inbox", inbox, cwd=tmp_path, env=service_env(DATABASE_URL=url),
            prefix=unprivileged(), wait_healthy=False,
        ) as service:  # fmt: skip
            assert service.process.wait(60) == 2  # a setting that cannot work
    finally:
        for path in reversed(paths):
            path.chmod(path.stat().st_mode | 0o200)
    log = service.log.read_text()
    assert "error: setting database_url (" in log
    assert f"the folder {database.parent} cannot be written: Permission denied" in log
    assert "Traceback" not in log


def test_a_deleted_sqlite_file_under_the_real_service(database: Path, tmp_path: Path) -> None:
    url = migrated(database)
    inbox = tmp_path / "inbox"
    source = place(FIXTURES / "speech_a.wav", inbox)
    with running_service(
        "--role", "api", "--inbox", inbox, cwd=tmp_path, env=service_env(DATABASE_URL=url)
    ) as service:
        assert service.client.get("/ready").status_code == 200
        shutil.move(database, tmp_path / "moved-away.db")
        ready = service.client.get("/ready")
        assert ready.status_code == 503 and "was deleted" in ready.json()["problems"][0]
        submitted = service.client.post("/transcribe", json={"path": str(source)})
        assert submitted.status_code == 503, submitted.text
        assert service.stop() == 0
    assert not database.exists()
    assert "Traceback" not in service.log.read_text()
