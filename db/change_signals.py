"""What tells the change feed (db/changes.py) that a job may have changed, whichever process or
machine changed it: PostgreSQL's channel, spoken by the jobs table's trigger (migration 0013), or,
for SQLite, the database file being written (inotify, through watchdog). Either lets the feed
sleep while nothing happens instead of reading the table several times a second."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from whisper_transcriber.db.announcements import CHANGES_CHANNEL, ChannelListener

# Events that say nothing about a file's content.
_QUIET_EVENTS = frozenset({"opened", "closed_no_write"})

log = logging.getLogger(__name__)


class ChangeSignal(Protocol):
    # The signal may come a moment before the change can be read: look again shortly after.
    early: bool

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def listening(self) -> bool:
        """Whether a change would be heard now (else the feed polls as if it had no signal)."""
        ...


class _ChannelSignal:
    """PostgreSQL: NOTIFY is delivered once the change is committed, so never early."""

    early = False

    def __init__(self, database_url: str, on_signal: Callable[[], None]) -> None:
        self._listener = ChannelListener(
            database_url, CHANGES_CHANNEL, on_signal, purpose="job changes"
        )

    def start(self) -> None:
        self._listener.start()

    def stop(self) -> None:
        self._listener.stop()

    def listening(self) -> bool:
        return self._listener.connected.is_set()


class _DatabaseFileSignal(FileSystemEventHandler):
    """SQLite: a write to the database, its WAL or its journal. A commit's last write to the WAL
    comes just before the commit is readable (the WAL's index is updated in shared memory, which
    inotify does not see): early."""

    early = True

    def __init__(self, database: Path, on_signal: Callable[[], None]) -> None:
        self.database = database
        self._names = {database.name, f"{database.name}-wal", f"{database.name}-journal"}
        self._on_signal = on_signal
        self._observer = Observer()
        self._watching = False

    def start(self) -> None:
        try:
            self._observer.schedule(self, str(self.database.parent), recursive=False)
            self._observer.start()
        except OSError as exc:  # no inotify here, its limit reached, the folder gone
            log.warning(
                "cannot watch %s for job changes (%s); reading the jobs table often instead",
                self.database,
                exc,
            )
            return
        self._watching = True

    def stop(self) -> None:
        if self._watching:
            self._observer.stop()
            self._observer.join()
            self._watching = False

    def listening(self) -> bool:
        return self._watching and self._observer.is_alive()

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _QUIET_EVENTS:
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if raw and os.path.basename(os.fsdecode(raw)) in self._names:
                self._on_signal()
                return


def change_signal(engine: Engine, on_signal: Callable[[], None]) -> ChangeSignal | None:
    """The signal for this database, not started; None where there is none to have (SQLite in
    memory)."""
    if engine.dialect.name == "postgresql":
        return _ChannelSignal(engine.url.render_as_string(hide_password=False), on_signal)
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        return _DatabaseFileSignal(Path(database).resolve(), on_signal)
    return None
