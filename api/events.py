"""Job changes for the event loop: the change feed's thread publishes, requests subscribe.

Each subscriber (an /events stream, a request waiting for its job) has a bounded queue; a
subscriber too slow to keep up loses its oldest events, never the feed's pace."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import anyio

from whisper_transcriber.db.job_queries import JobQueries
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.values import JobRecord

QUEUE_SIZE = 1000


def event_kind(job: JobRecord) -> str:
    """queued, started, progress, done, failed or cancelled."""
    if job.status is JobStatus.RUNNING:
        return "progress" if job.progress > 0 else "started"
    return job.status.value


class Subscription:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[JobRecord] = asyncio.Queue(QUEUE_SIZE)

    def offer(self, job: JobRecord) -> None:
        """On the subscriber's loop."""
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(job)


class EventHub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: set[Subscription] = set()
        self._listeners: list[Callable[[JobRecord], None]] = []

    def add_listener(self, listener: Callable[[JobRecord], None]) -> None:
        """Called with every change, on the change feed's thread (it must not block)."""
        with self._lock:
            self._listeners.append(listener)

    def publish(self, job: JobRecord) -> None:
        """From any thread (the change feed's)."""
        with self._lock:
            subscriptions = list(self._subscriptions)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(job)
        if job.parent_id is not None:  # a piece of a split file: its parent's progress says it
            return
        for subscription in subscriptions:
            subscription.loop.call_soon_threadsafe(subscription.offer, job)

    @contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        """On the event loop; the events from now on, while the block runs."""
        subscription = Subscription(asyncio.get_running_loop())
        with self._lock:
            self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            with self._lock:
                self._subscriptions.discard(subscription)

    async def wait_until_final(self, store: JobQueries, job_id: int) -> JobRecord:
        """The job once it has ended, whoever runs it; never blocks the event loop."""
        with self.subscribe() as subscription:
            job = await anyio.to_thread.run_sync(store.get, job_id)  # after subscribing: no gap
            while not job.status.is_final:
                change = await subscription.queue.get()
                if change.id == job_id:
                    job = change
            return job
