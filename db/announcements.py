"""PostgreSQL's channels: the NOTIFY of a job made due, the trigger's NOTIFY of any job changed
(migration 0013), and a LISTEN thread that hears one of them."""

from __future__ import annotations

import logging
import os
import selectors
import threading
from collections.abc import Callable

import psycopg
from sqlalchemy import Connection, text

from whisper_transcriber.db.engine import POSTGRES_CONNECT_TIMEOUT_S, normalize_url

# The channel on which every newly due job is announced (NOTIFY is sent on commit): workers.
NOTIFY_CHANNEL = "whisper_transcriber_jobs"
# Every insert or update of a job row, by the jobs table's trigger: the change feed.
CHANGES_CHANNEL = "whisper_transcriber_job_changes"
RECONNECT_S = 2.0
STOP_WAIT_S = 5.0
# A silent connection is pinged after this long; TCP keepalives find a dead peer sooner.
PING_S = 60.0
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
    connects or loses its connection (what was said meanwhile, and the news that it no longer
    hears); reconnects after failures. `connected` is set while it listens. It sleeps until the
    server or stop() speaks, looking at the connection every PING_S: a connection dropped
    without a word (a NAT's idle timeout, a host gone) is found by the ping or by TCP keepalives,
    not never."""

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
        self._stopping = threading.Lock()
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._run, name=f"listen-{channel}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Once; later calls do nothing. Waits at most STOP_WAIT_S (a connection attempt to a
        server that does not answer ends at its own time-out; the thread is a daemon)."""
        with self._stopping:
            if self._stop.is_set():
                return
            self._stop.set()
            os.write(self._wake_write, b"x")
        if self._thread.is_alive():
            self._thread.join(STOP_WAIT_S)
        if not self._thread.is_alive():  # else it still holds the pipe: left to the exit
            os.close(self._wake_read)
            os.close(self._wake_write)

    def _run(self) -> None:
        failing = False  # said once per outage, not every RECONNECT_S
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self.conninfo,
                    autocommit=True,
                    connect_timeout=POSTGRES_CONNECT_TIMEOUT_S,
                    keepalives=1,
                    keepalives_idle=30,
                    keepalives_interval=10,
                    keepalives_count=3,
                ) as conn:
                    conn.execute(f"LISTEN {self.channel}")
                    self.connected.set()
                    if failing:
                        log.info("listening for %s again", self.purpose)
                        failing = False
                    self.on_notify()  # whatever was said while we were not listening
                    self._listen(conn)
            except Exception as exc:  # the server, the network, a surprise: listen again
                if self.connected.is_set():
                    self.connected.clear()
                    self.on_notify()  # the listener no longer hears: look now, poll from here
                if not failing:
                    log.warning(
                        "listening for %s failed (%s); polling until it is back", self.purpose, exc
                    )
                    failing = True
                self._stop.wait(RECONNECT_S)
            finally:
                self.connected.clear()

    def _listen(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        with selectors.DefaultSelector() as selector:  # not select(): no limit on fd numbers
            selector.register(conn.fileno(), selectors.EVENT_READ, "server")
            selector.register(self._wake_read, selectors.EVENT_READ, "stop")
            while not self._stop.is_set():
                ready = {key.data for key, _ in selector.select(PING_S)}
                if "stop" in ready:
                    return
                if not ready:  # quiet for PING_S: is anyone still there?
                    conn.execute("SELECT 1")
                for _notification in conn.notifies(timeout=DRAIN_S):
                    self.on_notify()
