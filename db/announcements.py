"""PostgreSQL's channels: the NOTIFY of a job made due, the trigger's NOTIFY of any job changed
(migration 0013), and a LISTEN thread that hears one of them."""

from __future__ import annotations

import logging
import os
import select
import threading
from collections.abc import Callable

import psycopg
from sqlalchemy import Connection, text

from whisper_transcriber.db.engine import normalize_url

# The channel on which every newly due job is announced (NOTIFY is sent on commit): workers.
NOTIFY_CHANNEL = "whisper_transcriber_jobs"
# Every insert or update of a job row, by the jobs table's trigger: the change feed.
CHANGES_CHANNEL = "whisper_transcriber_job_changes"
RECONNECT_S = 2.0
# Once the socket has data: how long to collect what came with it. (psycopg 3.2.1, our floor,
# may not look at all with a timeout of 0.)
DRAIN_S = 0.01

log = logging.getLogger(__name__)


def announce(conn: Connection) -> None:
    """Tell every process's listeners, when conn's transaction commits (the job store's, after a
    job became due). SQLite has no such channel: its other processes poll."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})


def listens(database_url: str) -> bool:
    """Only PostgreSQL has a channel; SQLite services rely on in-process wake-ups and the poll."""
    return normalize_url(database_url).get_backend_name() == "postgresql"


class ChannelListener:
    """A thread that calls on_notify for every NOTIFY on a channel, and once each time it
    (re)connects, for what was said while nobody listened; reconnects after failures.
    `connected` is set while it listens. It sleeps in select() until the server or stop() speaks:
    no wake-ups while nothing happens."""

    def __init__(
        self, database_url: str, channel: str, on_notify: Callable[[], None], *, purpose: str
    ) -> None:
        url = normalize_url(database_url).set(drivername="postgresql")
        self.conninfo = url.render_as_string(hide_password=False)
        self.channel = channel
        self.on_notify = on_notify
        self.purpose = purpose  # for the log: "new jobs", "job changes"
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._run, name=f"listen-{channel}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        os.write(self._wake_write, b"x")
        if self._thread.is_alive():
            self._thread.join()
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {self.channel}")
                    self.connected.set()
                    self.on_notify()  # whatever was said while we were not listening
                    while not self._stop.is_set():
                        ready, _, _ = select.select([conn.fileno(), self._wake_read], [], [])
                        if self._wake_read in ready:
                            return
                        for _notification in conn.notifies(timeout=DRAIN_S):
                            self.on_notify()
            except psycopg.Error as exc:
                self.connected.clear()
                log.warning(
                    "listening for %s failed (%s); polling until it is back", self.purpose, exc
                )
                self._stop.wait(RECONNECT_S)
            finally:
                self.connected.clear()
