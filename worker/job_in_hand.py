"""The job a worker thread is running, for the log lines written meanwhile.

The worker only says which job it is on; how lines show it is the service's logging set-up
(service/logs.py), which reads it from here: the service may import the worker, never the reverse.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

_job_in_hand: contextvars.ContextVar[int | None] = contextvars.ContextVar("job", default=None)


@contextmanager
def about_job(job_id: int) -> Iterator[None]:
    """Lines logged in this thread meanwhile are about this job."""
    token = _job_in_hand.set(job_id)
    try:
        yield
    finally:
        _job_in_hand.reset(token)


def job_in_hand() -> int | None:
    """The id of the job this thread is running; None when it runs none."""
    return _job_in_hand.get()
