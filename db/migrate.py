"""Bring a database to the newest schema with the project's one Alembic history."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from whisper_transcriber.db.engine import SQLITE_BEGIN_OPTION
from whisper_transcriber.db.errors import DatabaseUnavailable

# The repository's alembic/ folder, shipped inside the package (an installed wheel has no
# alembic.ini and no checkout beside it; site-packages/alembic is the library itself).
SCRIPT_LOCATION = "whisper_transcriber:migrations"
# Any fixed number: the advisory lock that serialises concurrent migrations on PostgreSQL.
MIGRATION_LOCK_KEY = 7_406_218_331


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


@contextmanager
def sqlite_foreign_keys_off(connection: Connection) -> Iterator[None]:
    """SQLite rebuilds a table to change a constraint (Alembic's batch mode: copy, DROP TABLE,
    rename). With foreign keys on, that DROP deletes every row first and its ON DELETE CASCADE
    takes the transcripts with it: they are off for the migration. The pragma is a no-op inside
    a transaction, so it is set on the driver's connection before one begins."""
    if connection.dialect.name != "sqlite":
        yield
        return
    driver = connection.connection.dbapi_connection
    assert driver is not None
    driver.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        driver.execute("PRAGMA foreign_keys=ON")


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Services starting together take turns (PostgreSQL advisory lock; SQLite's write lock)."""
    config = alembic_config()
    try:
        with engine.connect() as connection, sqlite_foreign_keys_off(connection):
            connection.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                    )
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
    except SQLAlchemyError as exc:
        lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        reason = lines[0] if lines else type(exc).__name__
        raise DatabaseUnavailable(f"migrating the database failed: {reason}") from exc
