"""Bring a database to the newest schema with the project's one Alembic history."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from alembic import command
from db.engine import SQLITE_BEGIN_OPTION
from db.errors import DatabaseUnavailable

# alembic/ and alembic.ini sit at the repository's top level, beside this package.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Any fixed number: the advisory lock that serialises concurrent migrations on PostgreSQL.
MIGRATION_LOCK_KEY = 7_406_218_331


def alembic_config() -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Services starting together take turns (PostgreSQL advisory lock; SQLite's write lock)."""
    config = alembic_config()
    try:
        with engine.connect() as connection:
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
