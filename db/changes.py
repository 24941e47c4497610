"""The change feed: one thread per process that reads which jobs changed, for /events and for
requests that wait for their job (whichever process or machine ran it).

It looks every POLL_S, and at once when poked (a job queued here, a NOTIFY from elsewhere).
Change times come from the rows themselves; the feed re-reads an OVERLAP_S window behind the
newest change it saw, so that a write from a machine whose clock lags a little is not missed,
and drops what it already reported (same job, same updated_at).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from whisper_transcriber.db.errors import QueueError
from whisper_transcriber.db.job_queries import JobQueries
from whisper_transcriber.db.values import JobRecord

POLL_S = 0.25
OVERLAP_S = 2.0
PAGE = 500
ERROR_PAUSE_S = 1.0  # after a failed read, before the next

log = logging.getLogger(__name__)


class JobChanges:
    def __init__(self, store: JobQueries, on_change: Callable[[JobRecord], None]) -> None:
        self.store = store
        self.on_change = on_change
        self._poke = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-changes", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._poke.set()
        if self._thread.is_alive():
            self._thread.join()

    def poke(self) -> None:
        """Look now (called from any thread)."""
        self._poke.set()

    def _read_all(self, moment: datetime) -> list[JobRecord]:
        """Every change since the moment, page after page (a burst may change thousands)."""
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
            self._poke.wait(POLL_S)
            self._poke.clear()
            if self._stop.is_set():
                return
            try:
                changed = self._read_all(newest - timedelta(seconds=OVERLAP_S))
            except QueueError as exc:
                log.warning("cannot read job changes: %s", exc)
                self._stop.wait(ERROR_PAUSE_S)
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
