"""Which driver errors mean "the database is away" and which mean "it refused this statement".

Only the first kind is worth waiting out (a restart, a failover, a lock, a full disk): callers
retry on DatabaseUnavailable. A statement the database refuses (a value it cannot store, a
missing table, a bug) would be refused again: DatabaseRefused fails the operation at once.
"""

from __future__ import annotations

from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
    StatementError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from whisper_transcriber.db.errors import (
    DatabaseReadOnly,
    DatabaseRefused,
    DatabaseUnavailable,
    QueueError,
)

# PostgreSQL SQLSTATE classes of a server or connection that is away, busy or out of resources,
# not of a wrong statement: connection exception, transaction rollback (serialization failure,
# deadlock), insufficient resources (disk full, too many connections), operator intervention
# (shutdown, a cancelled statement), system error (I/O).
PG_UNAVAILABLE_CLASSES = frozenset({"08", "40", "53", "57", "58"})
PG_UNAVAILABLE_STATES = frozenset({"55006", "55P03"})  # object in use, lock not available
PG_READ_ONLY_STATES = frozenset({"25006"})  # read-only transaction: a standby, or set read-only
PG_UNIQUE_VIOLATION = "23505"
# SQLite result codes (the primary code, the low byte of the extended one) of a file that cannot
# be used now: PERM, BUSY, LOCKED, NOMEM, IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL, AUTH, NOTADB.
SQLITE_UNAVAILABLE_CODES = frozenset({3, 5, 6, 7, 10, 11, 13, 14, 15, 23, 26})
SQLITE_READONLY = 8
SQLITE_UNIQUE_CODES = frozenset({1555, 2067})  # CONSTRAINT_PRIMARYKEY, CONSTRAINT_UNIQUE


def reason_of(exc: BaseException) -> str:
    """The driver's own message, first line only (no SQL, no parameters)."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


def is_unique_violation(exc: IntegrityError) -> bool:
    """A unique constraint: the insert-once race its callers expect (another writer won)."""
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is not None:
        return bool(sqlstate == PG_UNIQUE_VIOLATION)
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        return code in SQLITE_UNIQUE_CODES
    return "unique" in str(orig).lower()


def translated(exc: SQLAlchemyError) -> QueueError:
    """The project's exception for an error from SQLAlchemy or the driver beneath it."""
    reason = reason_of(exc)
    if isinstance(exc, PoolTimeout):  # every connection of the pool in use for pool_timeout
        return DatabaseUnavailable(f"no free database connection: {reason}")
    if not isinstance(exc, DBAPIError):
        if isinstance(exc, StatementError):  # a value the column type refused before sending
            return DatabaseRefused(reason)
        return DatabaseRefused(f"{type(exc).__name__}: {reason}")
    if exc.connection_invalidated:
        return DatabaseUnavailable(reason)
    kind = _kind(exc)
    if kind == "read-only":
        return DatabaseReadOnly(reason)
    if kind == "unavailable":
        return DatabaseUnavailable(reason)
    return DatabaseRefused(reason)


def _kind(exc: DBAPIError) -> str:
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate:  # PostgreSQL (psycopg): the server said why
        if sqlstate in PG_READ_ONLY_STATES:
            return "read-only"
        if sqlstate[:2] in PG_UNAVAILABLE_CLASSES or sqlstate in PG_UNAVAILABLE_STATES:
            return "unavailable"
        return "refused"
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        if code & 0xFF == SQLITE_READONLY:
            return "read-only"
        return "unavailable" if code & 0xFF in SQLITE_UNAVAILABLE_CODES else "refused"
    # No code: psycopg's client side (a connection lost or refused, a value it cannot send),
    # pysqlite's own checks, another driver. By the DB-API class.
    return "unavailable" if isinstance(exc, (OperationalError, InterfaceError)) else "refused"
