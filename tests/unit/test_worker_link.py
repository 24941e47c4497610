"""A worker's wait for work: it ends when woken, and, for a worker not yet registered, as soon as
its heartbeat thread registers it (not at the fallback poll, which may be many minutes)."""

from __future__ import annotations

import multiprocessing
import os
import threading

from tests.helpers.waiting import wait_until
from whisper_transcriber.worker.process import WorkerLink

# Far longer than the test waits: a wait that ends in time ended for its reason.
POLL_S = 3600.0
WAIT_S = 30.0


def link() -> tuple[WorkerLink, multiprocessing.connection.Connection]:
    context = multiprocessing.get_context("spawn")
    reader, writer = context.Pipe(duplex=False)
    return (
        WorkerLink(
            index=0,
            parent_pid=os.getppid(),
            token="t",
            stop=context.Event(),
            wake=reader,
            errors=context.Queue(),
            ready=context.RawValue("b", 0),
            job_id=context.Value("q", 0),
            attempt=context.Value("q", 0),
            job_started=context.Value("d", 0.0),
            abandoned=context.Array("q", 2),
        ),
        writer,
    )


def waiting(run: WorkerLink, **kwargs: object) -> threading.Thread:
    thread = threading.Thread(target=run.wait_for_work, args=(POLL_S,), kwargs=kwargs, daemon=True)
    thread.start()
    return thread


def test_a_registration_ends_the_wait() -> None:
    run, _writer = link()
    registered = threading.Event()
    thread = waiting(run, until=registered.is_set)
    assert thread.is_alive()
    registered.set()
    wait_until(lambda: not thread.is_alive(), WAIT_S, "the wait to end at the registration")


def test_a_wake_up_ends_the_wait() -> None:
    run, writer = link()
    thread = waiting(run)
    writer.send_bytes(b"x")
    wait_until(lambda: not thread.is_alive(), WAIT_S, "the wait to end at the wake-up")
