"""The queue's own exceptions: callers never catch SQLAlchemy or driver errors."""


class QueueError(Exception):
    """Base of every error the job store raises."""


class DatabaseUnavailable(QueueError):
    """The database cannot be reached or the URL is not usable, or it is busy, full or takes no
    writes: the same statement may work later, so callers wait and try again."""


class WritersBusy(DatabaseUnavailable):
    """A read that waits for the writers (SQLite's write lock) found it held for longer than it
    waits: a long write is under way (a migration, a retention batch, a sqlite3 shell)."""


class DatabaseReadOnly(DatabaseUnavailable):
    """The database answers but takes no writes (a read-only file, a standby, a full disk)."""


class DatabaseRefused(QueueError):
    """The database answered and refused the statement: a value it cannot store, a schema this
    version does not expect, a bug. The same statement would be refused again, so the operation
    fails with this reason instead of waiting (a worker fails the job it was recording)."""


class UnstorablePath(QueueError):
    """A path the database cannot hold (a name that is not valid UTF-8); the message says how to
    fix it. Nothing was recorded."""


def check_storable(path: str) -> None:
    """UnstorablePath for a path the database cannot hold as text: one whose name is not valid
    UTF-8 (common on SMB shares), which Python hands over with its bytes escaped. The same
    words wherever such a path is refused (the queue, `transcribe --server`)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        shown = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise UnstorablePath(
            f"{shown}: the name is not valid UTF-8, so it cannot be recorded; give it a UTF-8 "
            "name (for example with convmv -f latin1 -t utf-8)"
        ) from None


class JobNotFound(QueueError):
    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} does not exist")
        self.job_id = job_id


class LeaseLost(QueueError):
    """The attempt is no longer current: the job was recovered, cancelled or taken by another worker."""

    def __init__(self, job_id: int, attempt: int) -> None:
        super().__init__(f"job {job_id}: attempt {attempt} is no longer current")
        self.job_id = job_id
        self.attempt = attempt


class InvalidTransition(QueueError):
    """The job is not in a state that allows the operation (e.g. cancelling a finished job)."""
