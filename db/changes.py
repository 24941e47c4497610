"""The change feed: one thread per process that reads which jobs changed, for /events and for
requests that wait for their job (whichever process or machine ran it).

It looks at once when poked (a job queued here) or signalled (db/change_signals.py: PostgreSQL's
NOTIFY of a changed job row), shortly after the SQLite file is written (ReadSchedule), and
otherwise every QUIET_POLL_S, a safety net that costs next to nothing while the service idles.
Without a signal (SQLite in memory, no inotify, the channel's connection lost) it looks every
POLL_S.
Change times come from the rows themselves; the feed re-reads an OVERLAP_S window behind the
newest change it saw, so that a write from a machine whose clock lags a little is not missed,
and drops what it already reported (same job, same updated_at).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from whisper_transcriber.db.change_signals import change_signal
from whisper_transcriber.db.errors import QueueError, WritersBusy
from whisper_transcriber.db.job_queries import JobQueries
from whisper_transcriber.db.values import JobRecord

POLL_S = 0.25
QUIET_POLL_S = 5.0
# After an early signal (the SQLite file written while its commit is being made): a look
# SETTLE_S after the first such signal, so that a commit's writes make one look, taken behind the
# writers' lock, which waits for a commit under way (JobQueries.changed_since). Never two such
# looks closer than MIN_GAP_S: a stream of writes costs a few looks a second.
SETTLE_S = 0.02
MIN_GAP_S = 0.05
OVERLAP_S = 2.0
PAGE = 500
ERROR_PAUSE_S = 1.0  # after a failed read, before the next

log = logging.getLogger(__name__)


@dataclass
class ReadSchedule:
    """When the feed looks next (monotonic seconds). Not thread-safe: the feed holds a lock."""

    quiet_poll_s: float = QUIET_POLL_S
    last_read: float = -math.inf
    read_now: bool = False
    first_unread_signal: float | None = None  # the first early signal since the last look

    def poked(self) -> None:
        self.read_now = True

    def signalled(self, now: float, *, early: bool) -> None:
        if not early:
            self.read_now = True
        elif self.first_unread_signal is None:
            self.first_unread_signal = now

    def next_read(self, *, listening: bool) -> float:
        if self.read_now:
            return -math.inf
        due = self.last_read + (self.quiet_poll_s if listening else POLL_S)
        if self.first_unread_signal is not None:
            due = min(due, max(self.first_unread_signal + SETTLE_S, self.last_read + MIN_GAP_S))
        return due

    def reading(self, now: float) -> bool:
        """A look begins; whether it must wait for the writers (an early signal is pending)."""
        after_writers = self.first_unread_signal is not None
        self.last_read = now
        self.read_now = False
        self.first_unread_signal = None
        return after_writers


class JobChanges:
    def __init__(
        self,
        store: JobQueries,
        on_change: Callable[[JobRecord], None],
        *,
        quiet_poll_s: float = QUIET_POLL_S,
    ) -> None:
        self.store = store
        self.on_change = on_change
        self._schedule = ReadSchedule(quiet_poll_s)
        self._lock = threading.Lock()  # the schedule's, between the feed and its wakers
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._signal = change_signal(store.engine, self._on_signal)
        self._thread = threading.Thread(target=self._run, name="job-changes", daemon=True)

    def start(self) -> None:
        if self._signal is not None:
            self._signal.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._signal is not None:
            self._signal.stop()

    def poke(self) -> None:
        """Look now (called from any thread, once a change is committed)."""
        with self._lock:
            self._schedule.poked()
        self._wake.set()

    def _on_signal(self) -> None:
        early = self._signal is not None and self._signal.early
        with self._lock:
            self._schedule.signalled(time.monotonic(), early=early)
        self._wake.set()

    def _until_read(self) -> float:
        """Seconds until the next look is due (0: now)."""
        listening = self._signal is not None and self._signal.listening()
        with self._lock:
            due = self._schedule.next_read(listening=listening)
        return max(due - time.monotonic(), 0.0)

    def _read_all(self, moment: datetime, *, after_writers: bool) -> list[JobRecord]:
        """Every change since the moment, page after page (a burst may change thousands)."""
        try:
            changed = self.store.changed_since(moment, limit=PAGE, after_writers=after_writers)
        except WritersBusy:  # a long write under way: what is readable now, and a look after it
            with self._lock:
                self._schedule.signalled(time.monotonic(), early=True)
            changed = self.store.changed_since(moment, limit=PAGE)
        page = changed
        while len(page) == PAGE:
            last = page[-1]
            page = self.store.changed_since(last.updated_at, after_id=last.id, limit=PAGE)
            changed += page
        return changed

    def _run(self) -> None:
        newest: datetime = self.store.clock()  # only what changes from now on
        reported: dict[int, datetime] = {}
        surprises: set[str] = set()  # unexpected errors already logged with their traceback
        while not self._stop.is_set():
            wait_s = self._until_read()
            if wait_s > 0:
                self._wake.wait(wait_s)
                self._wake.clear()  # what woke it is in the schedule, read again above
                continue
            with self._lock:
                after_writers = self._schedule.reading(time.monotonic())
            try:
                changed = self._read_all(
                    newest - timedelta(seconds=OVERLAP_S), after_writers=after_writers
                )
            except QueueError as exc:
                log.warning("cannot read job changes: %s", exc)
                self._stop.wait(ERROR_PAUSE_S)
                self.poke()
                continue
            except Exception as exc:  # a row that cannot be read, a bug: the feed goes on
                surprise = f"{type(exc).__name__}: {exc}"
                log.error(  # the traceback once, then a line each time
                    "reading job changes failed: %s; trying again",
                    surprise,
                    exc_info=exc if surprise not in surprises else None,
                )
                surprises.add(surprise)
                self._stop.wait(ERROR_PAUSE_S)
                self.poke()
                continue
            for job in changed:
                if reported.get(job.id) == job.updated_at:
                    continue
                reported[job.id] = job.updated_at
                newest = max(newest, job.updated_at)
                try:
                    self.on_change(job)
                except Exception:
                    log.exception("a job-change listener failed")
            horizon = newest - timedelta(seconds=OVERLAP_S)
            reported = {job_id: at for job_id, at in reported.items() if at >= horizon}
