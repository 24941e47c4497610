"""Bring a database to the newest schema with the project's one Alembic history."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from alembic import command
from db.errors import DatabaseUnavailable

# alembic/ and alembic.ini sit at the repository's top level, beside this package.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def alembic_config() -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except SQLAlchemyError as exc:
        raise DatabaseUnavailable(f"migrating the database failed: {exc}") from exc
