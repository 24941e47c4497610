"""The change feed hears changes made by other processes at once (PostgreSQL's trigger and
channel, a write to the SQLite file), not at its slow safety poll."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import text, update

from tests.helpers.waiting import wait_until
from whisper_transcriber.db.announcements import CHANGES_CHANNEL, ChannelListener
from whisper_transcriber.db.changes import JobChanges
from whisper_transcriber.db.engine import SQLITE_BEGIN_OPTION, make_engine
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.store_base import JOBS
from whisper_transcriber.db.values import JobOptions, JobRecord

# Far longer than the test waits: a change seen in time was heard, not polled for.
QUIET_POLL_S = 3600.0
WAIT_S = 30.0
# Less than SQLite's busy timeout (30 s), which a read waiting behind the writer would take.
LONG_WRITER_WAIT_S = 15.0

OTHER_PROCESS = """
import sys
from whisper_transcriber.db.engine import SQLITE_BEGIN_OPTION, make_engine
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.store_base import JOBS
from whisper_transcriber.db.values import JobOptions
store = JobStore(make_engine(sys.argv[1]))
job, _ = store.enqueue(sys.argv[2], JobOptions(), "cli")
claimed = store.claim("elsewhere")
assert claimed is not None and claimed.id == job.id
store.fail(job.id, claimed.attempts, "stopped by the test", retryable=False)
"""


class Seen:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.jobs: list[JobRecord] = []

    def __call__(self, job: JobRecord) -> None:
        with self.lock:
            self.jobs.append(job)

    def statuses(self) -> list[str]:
        with self.lock:
            return [job.status.value for job in self.jobs]


def listening_feed(store: JobStore, seen: Seen) -> JobChanges:
    feed = JobChanges(store, seen, quiet_poll_s=QUIET_POLL_S)
    feed.start()
    signal = feed._signal
    assert signal is not None
    wait_until(signal.listening, WAIT_S, "the feed's signal to listen")
    return feed


def test_another_process_changes_reach_the_feed_without_polling(
    database_url: str, store: JobStore, tmp_path: Path
) -> None:
    source = tmp_path / "elsewhere.wav"
    source.write_bytes(b"audio")
    seen = Seen()
    feed = listening_feed(store, seen)
    try:
        subprocess.run(
            [sys.executable, "-c", OTHER_PROCESS, database_url, str(source)],
            check=True,
            timeout=120,
        )
        wait_until(lambda: "failed" in seen.statuses(), WAIT_S, "the failure to be heard")
    finally:
        feed.stop()


def test_a_hand_made_update_is_heard(database_url: str, store: JobStore, tmp_path: Path) -> None:
    """The trigger (PostgreSQL) and the file (SQLite) speak for any writer, not only the job
    store's (whose writes also wake this process's feed directly)."""
    source = tmp_path / "by-hand.wav"
    source.write_bytes(b"audio")
    job, _ = store.enqueue(source, JobOptions(), "api")
    seen = Seen()
    feed = listening_feed(store, seen)
    try:
        with store.engine.begin() as conn:  # not through the store: no in-process wake-up
            conn.execute(
                update(JOBS)
                .where(JOBS.c.id == job.id)
                .values(status=JobStatus.CANCELLED.value, updated_at=store.clock())
            )
        wait_until(lambda: "cancelled" in seen.statuses(), WAIT_S, "the update to be heard")
    finally:
        feed.stop()


@pytest.mark.postgres
def test_a_listener_that_loses_its_connection_says_so_and_listens_again(
    postgres_url: str,
) -> None:
    """The feed must look at once and poll fast while nobody listens: the listener calls it
    when its connection goes, not only when a notification comes; then it reconnects."""
    calls: list[bool] = []  # whether it was connected when it called

    def called() -> None:
        calls.append(listener.connected.is_set())

    listener = ChannelListener(postgres_url, CHANGES_CHANNEL, called, purpose="the test")
    listener.start()
    try:
        wait_until(listener.connected.is_set, WAIT_S, "the listener to connect")
        before = len(calls)
        engine = make_engine(postgres_url)
        try:
            with engine.begin() as conn:
                killed = (
                    conn.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND query LIKE 'LISTEN %'"
                        )
                    )
                    .scalars()
                    .all()
                )
        finally:
            engine.dispose()
        assert killed == [True]
        wait_until(lambda: False in calls[before:], WAIT_S, "the listener to say it lost its line")
        wait_until(listener.connected.is_set, WAIT_S, "the listener to connect again")
    finally:
        listener.stop()
        listener.stop()  # a second stop does nothing (the pipe is closed once)


def test_a_long_writer_does_not_hold_back_what_is_already_committed(
    sqlite_url: str, tmp_path: Path
) -> None:
    """SQLite's feed reads under the write lock after a file signal (to see a commit under way);
    a writer that then keeps the lock (a migration, a sqlite3 shell) must not hold back a change
    committed before it for the busy timeout (30 s): the feed reads what is there."""
    store = JobStore(make_engine(sqlite_url))
    source = tmp_path / "before-the-writer.wav"
    source.write_bytes(b"audio")
    job, _ = store.enqueue(source, JobOptions(), "api")
    seen = Seen()
    feed = listening_feed(store, seen)
    writer = make_engine(sqlite_url).connect()  # not through the store: no in-process wake-up
    try:
        writer.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        with writer.begin():
            writer.execute(
                update(JOBS)
                .where(JOBS.c.id == job.id)
                .values(status=JobStatus.CANCELLED.value, updated_at=store.clock())
            )
        long_write = writer.begin()  # the lock again at once, before the feed reads (20 ms on)
        wait_until(lambda: "cancelled" in seen.statuses(), LONG_WRITER_WAIT_S, "the change")
        long_write.rollback()
    finally:
        writer.close()
        feed.stop()
        store.engine.dispose()
