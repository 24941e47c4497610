"""The database's clock, for the times the job store writes and compares (leases above all).

Instances on several machines share one PostgreSQL: if each stamped leases with its own clock, a
machine whose clock runs ahead would recover (steal) jobs whose leases are live, and one whose
clock lags would stamp leases that outlive their worker. So the store's "now" is this machine's
clock plus its offset to the server's, measured from the midpoint of a round trip (as NTP does)
and measured again every CLOCK_CHECK_S; between measurements no statement waits for it.
SQLite needs none: every instance runs on the machine that holds the file, on its clock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

CLOCK_CHECK_S = 60.0
CLOCK_RETRY_S = 5.0  # after a measurement that failed (the database away)
# An offset past this is worth a line in the log: the machines' clocks disagree.
OFFSET_NOTE_S = 1.0

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    """This machine's clock, aware, in UTC."""
    return datetime.now(UTC)


class DatabaseClock:
    """Callable like a clock: the database server's time, as this machine best knows it."""

    def __init__(self, engine: Engine, local: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.local = local
        self.offset = timedelta(0)
        self._next_check = 0.0  # monotonic; the first call measures
        self._noted = False
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        if time.monotonic() >= self._next_check and self._lock.acquire(blocking=False):
            try:
                self._measure()
            finally:
                self._lock.release()
        return self.local() + self.offset

    def _measure(self) -> None:
        try:
            with self.engine.connect() as conn:
                before = self.local()
                server: datetime = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
                after = self.local()
        except SQLAlchemyError as exc:  # the last offset holds; the statement itself will say
            log.debug("cannot read the database's clock: %s", exc)
            self._next_check = time.monotonic() + CLOCK_RETRY_S
            return
        self.offset = server - (before + (after - before) / 2)
        self._next_check = time.monotonic() + CLOCK_CHECK_S
        apart = abs(self.offset.total_seconds()) > OFFSET_NOTE_S
        if apart and not self._noted:
            log.warning(
                "this machine's clock is %+.1f s off the database's; leases and job times "
                "follow the database's",
                -self.offset.total_seconds(),
            )
        self._noted = apart
