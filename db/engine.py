"""Engines for SQLite and PostgreSQL, made from a URL in entry points (never at import time)."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from whisper_transcriber.db.errors import DatabaseReadOnly, DatabaseUnavailable

SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_CONNECT_TIMEOUT_S = 5
# The connection option that makes a SQLite transaction start with BEGIN IMMEDIATE (see _on_begin).
SQLITE_BEGIN_OPTION = "sqlite_begin"
# The connection option that gives that BEGIN a busy timeout of its own (milliseconds), shorter
# than SQLITE_BUSY_TIMEOUT_MS: for a reader that would rather not wait behind a long writer.
SQLITE_BEGIN_WAIT_OPTION = "sqlite_begin_wait_ms"


def normalize_url(url: str) -> URL:
    """Parse a database URL; plain postgresql:// means psycopg 3, a relative SQLite path is made absolute."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseUnavailable(f"not a database URL: {url!r}") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        parsed = parsed.set(database=str(Path(parsed.database).expanduser().resolve()))
    return parsed


def supported_url(url: str) -> URL:
    """The URL normalised, when it names a database this service can use (SQLite, PostgreSQL);
    DatabaseUnavailable saying what it takes otherwise."""
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise DatabaseUnavailable(
            f"unsupported database {backend!r}: use sqlite:/// or postgresql://"
        )
    return parsed


def make_engine(url: str, **kwargs: Any) -> Engine:
    parsed = supported_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, **kwargs)
        _configure_sqlite(engine)
        if parsed.database and parsed.database != ":memory:" and "mode" not in parsed.query:
            _guard_sqlite_file(engine, parsed.database)
        return engine
    connect_args = {
        "connect_timeout": POSTGRES_CONNECT_TIMEOUT_S,
        **kwargs.pop("connect_args", {}),
    }
    return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args, **kwargs)


def check_connection(engine: Engine) -> None:
    """Connect once, turning any driver error into one readable DatabaseUnavailable."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        reason = cause[0] if cause else type(exc).__name__
        raise DatabaseUnavailable(
            f"cannot connect to {engine.url.render_as_string(hide_password=True)}: {reason}"
        ) from exc


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling would issue a deferred BEGIN lazily; we take it over so that
    # writes can start with BEGIN IMMEDIATE and wait on the busy timeout instead of failing on upgrade.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        mode = options.get(SQLITE_BEGIN_OPTION, "DEFERRED")
        wait_ms = options.get(SQLITE_BEGIN_WAIT_OPTION)
        if wait_ms is None:
            conn.exec_driver_sql(f"BEGIN {mode}")
            return
        # On the driver's connection: through SQLAlchemy the PRAGMA would begin a transaction.
        raw = conn.connection.dbapi_connection
        raw.execute(f"PRAGMA busy_timeout={int(wait_ms)}")
        try:
            conn.exec_driver_sql(f"BEGIN {mode}")
        finally:
            raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


class _SqliteFile:
    """The file the engine's first connection opened, by (device, inode)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.identity: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def _current(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        return stat.st_dev, stat.st_ino

    def remember(self) -> None:
        """At each new connection: the first one's file is the database from now on."""
        with self._lock:
            if self.identity is None:
                self.identity = self._current()
                return
        self.check()

    def check(self) -> None:
        """DatabaseUnavailable when the path no longer leads to that file."""
        if self.identity is None:
            return
        current = self._current()
        if current == self.identity:
            return
        if current is None:
            raise DatabaseUnavailable(
                f"the database file {self.path} was deleted while the service ran; put it "
                "back (or restore a backup) and restart the service"
            )
        raise DatabaseUnavailable(
            f"the database file {self.path} was replaced by another file while the service "
            "ran; restart the service to use the new one"
        )


def _guard_sqlite_file(engine: Engine, path: str) -> None:
    """A SQLite file deleted or replaced under the running service is an unavailable database.

    Open connections would go on with the old file (its inode lives while they hold it) and a
    new one would create an empty database at the path: every checkout compares the path's
    (device, inode) with the first connection's, and connections after the first open the file
    with mode=rw, which never creates it."""
    sqlite_file = _SqliteFile(path)

    @event.listens_for(engine, "do_connect")
    def _open_existing(
        _dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]
    ) -> None:
        if sqlite_file.identity is None or cparams.get("uri"):
            return
        sqlite_file.check()
        cargs[:] = [Path(path).as_uri() + "?mode=rw"]
        cparams["uri"] = True

    @event.listens_for(engine, "connect")
    def _remember(_dbapi_connection: Any, _record: Any) -> None:
        sqlite_file.remember()

    @event.listens_for(engine, "checkout")
    def _still_the_same_file(_dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        sqlite_file.check()  # raised here, the connection is closed and given back


def check_writable(conn: Connection) -> None:
    """DatabaseReadOnly when the database would refuse a write; changes nothing and waits for
    no lock. SQLite: an update of no row (a read-only file or folder, PRAGMA query_only); a
    lock held by a writer means it takes writes. PostgreSQL: a standby, or read-only by default
    (default_transaction_read_only)."""
    if conn.dialect.name == "postgresql":
        standby, read_only = conn.execute(
            text("SELECT pg_is_in_recovery(), current_setting('transaction_read_only')")
        ).one()
        if standby:
            raise DatabaseReadOnly("the database is a standby (in recovery): it takes no writes")
        if read_only == "on":
            raise DatabaseReadOnly("the database is read-only (default_transaction_read_only)")
        return
    if conn.dialect.name != "sqlite":
        return
    conn.exec_driver_sql("PRAGMA busy_timeout=0")
    try:
        conn.exec_driver_sql("UPDATE jobs SET id = id WHERE 0")
    except OperationalError as exc:
        if getattr(exc.orig, "sqlite_errorcode", 0) & 0xFF != sqlite3.SQLITE_BUSY:
            raise
    finally:
        conn.exec_driver_sql(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
