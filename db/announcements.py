"""PostgreSQL's jobs channel: the NOTIFY of a job made due, and a LISTEN thread that hears it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg
from sqlalchemy import Connection, text

from whisper_transcriber.db.engine import normalize_url

# The channel on which every newly due job is announced (NOTIFY is sent on commit).
NOTIFY_CHANNEL = "whisper_transcriber_jobs"
CHECK_STOP_S = 1.0
RECONNECT_S = 2.0

log = logging.getLogger(__name__)


def announce(conn: Connection) -> None:
    """Tell every process's listeners, when conn's transaction commits (the job store's, after a
    job became due). SQLite has no such channel: its other processes poll."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})


def listens(database_url: str) -> bool:
    """Only PostgreSQL has a channel; SQLite services rely on in-process wake-ups and the poll."""
    return normalize_url(database_url).get_backend_name() == "postgresql"


class JobAnnouncements:
    """A thread that calls on_job for every NOTIFY on the jobs channel; reconnects after failures."""

    def __init__(self, database_url: str, on_job: Callable[[], None]) -> None:
        url = normalize_url(database_url).set(drivername="postgresql")
        self.conninfo = url.render_as_string(hide_password=False)
        self.on_job = on_job
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-announcements", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.connected.set()
                    self.on_job()  # whatever was announced while we were not listening
                    while not self._stop.is_set():
                        for _notification in conn.notifies(timeout=CHECK_STOP_S, stop_after=1):
                            self.on_job()
            except psycopg.Error as exc:
                self.connected.clear()
                log.warning("listening for new jobs failed (%s); polling until it is back", exc)
                self._stop.wait(RECONNECT_S)
