"""One Alembic history builds the models' schema on SQLite and PostgreSQL alike."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from alembic import command
from db.engine import make_engine
from db.migrate import alembic_config, upgrade
from db.models import Base, include_in_schema_comparison


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
