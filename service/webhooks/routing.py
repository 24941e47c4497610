"""Which receivers hear a job event, and what they are sent: the webhooks setting's
subscriptions (every job, or an inbox's) and the callbacks requests asked for.

A body is Standard Webhooks' envelope: {"type": "job.done", "timestamp": ..., "data": the job as
GET /jobs/{id} gives it}, with the transcript (as GET /jobs/{id}/transcript?format=json gives it)
under data.transcript for a done job when the receiver asked for it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from whisper_transcriber.api.schemas import JobOut
from whisper_transcriber.db.errors import QueueError
from whisper_transcriber.db.job_queries import JobQueries
from whisper_transcriber.db.values import origin_inbox
from whisper_transcriber.db.webhook_outbox import Callback, JobEvent, NewDelivery
from whisper_transcriber.worker.outputs import rendered

REQUEST_SUBSCRIPTION = "request"
MEDIA_SUBSCRIPTION_PREFIX = "media:"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Subscription:
    """One of the webhooks setting's: an operator's, so its URL is not held to the callback
    rules (it may well be on the operator's own network)."""

    name: str
    url: str
    secret: str
    events: frozenset[str]
    transcript: bool = False
    inboxes: frozenset[str] = frozenset()  # empty: every job, wherever it came from

    def wants(self, event: JobEvent) -> bool:
        if event.callback_id is not None:  # the end replayed for one request's callback
            return False
        inbox = origin_inbox(event.job.origin)
        return event.type in self.events and (not self.inboxes or inbox in self.inboxes)


class Router:
    """deliveries_for of WebhookOutbox.route: reads transcripts through the store."""

    def __init__(
        self,
        subscriptions: Iterable[Subscription],
        store: JobQueries,
        media_servers: Mapping[str, str] | None = None,
    ) -> None:
        """media_servers: each media server's address by name, shown as its refreshes' URL."""
        self.subscriptions = tuple(subscriptions)
        self.store = store
        self.media_servers = dict(media_servers or {})

    def __call__(self, event: JobEvent, callbacks: Sequence[Callback]) -> list[NewDelivery]:
        targets = [
            (f"service:{s.name}", s.url, s.secret, False, s.transcript)
            for s in self.subscriptions
            if s.wants(event)
        ]
        targets += [
            (REQUEST_SUBSCRIPTION, c.url, c.secret, True, c.transcript)
            for c in callbacks
            if event.type in c.events and c.media is None
        ]
        deliveries = [  # a media server's refresh of the item, once its subtitle is written
            NewDelivery(
                f"{MEDIA_SUBSCRIPTION_PREFIX}{c.media['server']}",
                self.media_servers.get(c.media["server"], ""),
                "",
                False,
                json.dumps(c.media, ensure_ascii=False),
            )
            for c in callbacks
            if event.type in c.events and c.media is not None
        ]
        bodies: dict[bool, str] = {}
        for subscription, url, secret, guarded, transcript in targets:
            if transcript not in bodies:
                bodies[transcript] = self.body(event, with_transcript=transcript)
            deliveries.append(NewDelivery(subscription, url, secret, guarded, bodies[transcript]))
        return deliveries

    def body(self, event: JobEvent, *, with_transcript: bool) -> str:
        try:
            data = self._data(event, with_transcript=with_transcript)
        except QueueError:
            raise  # the database is away: the event is routed once it is back
        except Exception:  # one job that cannot be shown must not hold up every delivery
            log.exception(
                "webhooks: job %s's %s event shown without details", event.job.id, event.type
            )
            data = {"id": event.job.id, "status": event.job.status.value}
        envelope = {
            "type": f"job.{event.type}",
            "timestamp": event.created_at.isoformat(),
            "data": data,
        }
        return json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))

    def _data(self, event: JobEvent, *, with_transcript: bool) -> dict[str, Any]:
        job = event.job
        done = event.type == "done"
        summary = self.store.transcript_summaries([job.id]).get(job.id) if done else None
        data: dict[str, Any] = JobOut.from_record(job, summary).model_dump(mode="json")
        if with_transcript and done:
            transcript = self.store.transcript(job.id)
            if transcript is not None:
                data["transcript"] = json.loads(rendered(transcript.named(), "json", job.options))
        return data


def subscriptions_of(settings: Mapping[str, Any]) -> list[Subscription]:
    """The webhooks setting as subscriptions: {name: WebhookSetting}."""
    return [
        Subscription(
            name=name,
            url=entry.url,
            secret=entry.secret.get_secret_value(),
            events=frozenset(entry.events),
            transcript=entry.transcript,
            inboxes=frozenset(entry.inboxes),
        )
        for name, entry in settings.items()
    ]
