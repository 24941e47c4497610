"""Alembic environment: one history for SQLite and PostgreSQL, run by db.migrate or by hand."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.db.migrate import sqlite_foreign_keys_off
from whisper_transcriber.db.models import Base, include_in_schema_comparison

config = context.config
target_metadata = Base.metadata


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: batch mode rebuilds tables where needed.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_in_schema_comparison,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # db.migrate passes its own connection
        run_with(connection)
        return
    url = os.environ.get("WHISPER_TRANSCRIBER_DATABASE_URL") or config.get_main_option(
        "sqlalchemy.url"
    )
    engine = make_engine(url or "")
    with engine.connect() as conn, sqlite_foreign_keys_off(conn):
        run_with(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
