"""One Alembic history builds the models' schema on SQLite and PostgreSQL alike."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.migrate import alembic_config, upgrade
from whisper_transcriber.db.models import Base, include_in_schema_comparison
from whisper_transcriber.db.values import JobOptions


def test_head_matches_the_models(database_url: str) -> None:
    engine = make_engine(database_url)  # the fixture already upgraded it to head
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={"compare_type": True, "include_object": include_in_schema_comparison},
        )
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_downgrade_and_upgrade_again(database_url: str) -> None:
    engine = make_engine(database_url)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    assert {"jobs", "transcripts", "inbox_scans"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_both_backends_have_the_same_columns(sqlite_url: str, postgres_url: str) -> None:
    def shape(url: str) -> dict[str, list[tuple[str, bool]]]:
        engine = make_engine(url)
        inspector = inspect(engine)
        result = {
            table: [(c["name"], c["nullable"]) for c in inspector.get_columns(table)]
            for table in ("jobs", "transcripts", "inbox_scans")
        }
        engine.dispose()
        return result

    assert shape(sqlite_url) == shape(postgres_url)


def test_jobs_recorded_before_0007_are_not_done_again(database_url: str, tmp_path: Path) -> None:
    """After the upgrade, the newest job of each file version holds its work's key, and the same
    unchanged file with the same options answers that job: nothing is transcribed twice."""
    engine = make_engine(database_url)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0006")
    source = tmp_path / "talk.wav"
    source.write_bytes(b"speech")
    stat = source.stat()
    now = datetime.now(UTC).replace(tzinfo=None)
    row = {
        "path": str(source), "size": stat.st_size, "mtime": stat.st_mtime_ns,
        "options": json.dumps(JobOptions(formats=("srt",)).model_dump(mode="json")), "now": now,
    }  # fmt: skip
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO jobs (source_path, source_size, source_mtime_ns, origin, options, "
                "status, attempts, max_attempts, run_after, progress, outputs, created_at, "
                "updated_at) VALUES (:path, :size, :mtime, 'inbox:talks', :options, 'done', 1, 3, "
                ":now, 1.0, '[]', :now, :now)"
            ),
            row,
        )
        connection.execute(
            text(
                "INSERT INTO transcripts (job_id, language, language_probability, duration, text, "
                "segments, created_at) VALUES (1, 'en', 1.0, 2.0, 'Kept words.', "
                '\'[{"id": 1, "start": 0.0, "end": 2.0, "text": " Kept words."}]\', '
                ":now)"
            ),
            {"now": now},
        )
    upgrade(engine)
    store = JobStore(engine)
    [old] = store.get_many([1])
    assert old.dedupe_key is not None and old.source_inode == -1
    # SQLite rebuilt the table: its DROP must not have cascaded to the transcripts.
    transcript = store.transcript(1)
    assert transcript is not None and transcript.text == "Kept words."

    again, created = store.enqueue(source, JobOptions(formats=("srt",)), "inbox:talks")
    assert not created and again.id == old.id and again.source_inode == stat.st_ino
    assert store.enqueue(source, JobOptions(formats=("txt",)), "inbox:talks")[1] is True
    engine.dispose()


def test_0009_names_the_observer_kind_as_the_setting_does(database_url: str) -> None:
    """Scans recorded as 'inotify' read 'native' after the upgrade, and back after a downgrade."""
    engine = make_engine(database_url)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0008")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO inbox_scans (name, path, observer, poll_interval_s) VALUES "
                "('calls', '/srv/calls', 'inotify', NULL), ('nas', '/mnt/nas', 'polling', 10.0)"
            )
        )

    def observers() -> dict[str, str]:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT name, observer FROM inbox_scans"))
            return {name: observer for name, observer in rows}

    upgrade(engine)
    assert observers() == {"calls": "native", "nas": "polling"}
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0008")
    assert observers() == {"calls": "inotify", "nas": "polling"}
    engine.dispose()
