"""Recording an attempt's outcome through a database outage (a restart, a failover)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from whisper_transcriber.db.errors import DatabaseUnavailable

# How long a finished attempt waits for an unreachable database before its work is given up.
OUTCOME_PATIENCE_S = 600.0
FIRST_RETRY_S = 0.5
LAST_RETRY_S = 10.0

T = TypeVar("T")

log = logging.getLogger(__name__)


def patiently(record: Callable[[], T], job_id: int) -> T:
    """Record an attempt's outcome, waiting out a database outage (a restart, a failover) rather
    than throwing the work away: the lease fences it, so a late write can only be refused."""
    deadline = time.monotonic() + OUTCOME_PATIENCE_S
    delay = FIRST_RETRY_S
    while True:
        try:
            return record()
        except DatabaseUnavailable as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning(
                "job %s: cannot record the outcome yet (%s); trying again in %.1f s",
                job_id,
                exc,
                delay,
            )
            time.sleep(delay)
            delay = min(delay * 2, LAST_RETRY_S)
