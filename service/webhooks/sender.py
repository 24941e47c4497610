"""The webhook sender: one thread per instance that runs the watch role, which routes job events
into deliveries, sends each due delivery (a few at a time, so one slow receiver does not hold up
the rest) and records its answer.

It sleeps until a job changes (db/change_signals.py: PostgreSQL's channel, the SQLite file's
writes), a retry is due, or QUIET_POLL_S passes. Every attempt is signed afresh (its timestamp is
the attempt's); the message id stays, so a receiver can drop a message it already had, which is
the one duplicate HTTP cannot rule out: an answer lost to a time-out or a kill.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from whisper_transcriber.db.change_signals import change_signal
from whisper_transcriber.db.errors import QueueError
from whisper_transcriber.db.webhook_outbox import (
    Callback,
    Delivery,
    JobEvent,
    NewDelivery,
    Outcome,
    WebhookOutbox,
    shown_url,
)
from whisper_transcriber.service.webhooks.http import Answer, TargetPolicy, post
from whisper_transcriber.service.webhooks.routing import MEDIA_SUBSCRIPTION_PREFIX
from whisper_transcriber.service.webhooks.signing import signed_headers

QUIET_POLL_S = 5.0  # with a change signal; a safety net
POLL_S = 1.0  # without one (SQLite in memory, no inotify, the channel lost)
# A signal may come a moment before its commit can be read (SQLite's WAL): routing takes the
# writers' lock, which waits for that commit, but give it a moment first.
SETTLE_S = 0.02
ERROR_PAUSE_S = 1.0
SENDS_AT_ONCE = 4
RECORD_TRIES = 5  # an answer that cannot be recorded is sent again when its lease ends
PRUNE_EVERY_S = 3600.0

log = logging.getLogger(__name__)

Sender = Callable[..., Answer]
# A media server's refresh of an item: (server name, the item as its job recorded it, time-out).
Refresher = Callable[[str, Mapping[str, Any], float], Answer]


class WebhookSender:
    def __init__(
        self,
        outbox: WebhookOutbox,
        deliveries_for: Callable[[JobEvent, Sequence[Callback]], Sequence[NewDelivery]],
        *,
        callback_policy: TargetPolicy,
        retry_s: float,
        timeout_s: float,
        retention_s: float | None = None,
        sends_at_once: int = SENDS_AT_ONCE,
        send: Sender = post,
        refresh: Refresher | None = None,
    ) -> None:
        """retry_s: how long a delivery is tried; timeout_s: one attempt's limit; retention_s:
        how long delivered and failed deliveries are kept (None: for ever); refresh: makes a
        media server's refresh of an item (service/media_servers/refresh.py)."""
        self.outbox = outbox
        self.deliveries_for = deliveries_for
        self.callback_policy = callback_policy
        self.retry_s = retry_s
        self.timeout_s = timeout_s
        self.retention_s = retention_s
        self.sends_at_once = sends_at_once
        self._send = send
        self._refresh = refresh
        # An attempt that outlives this (a sender killed mid-attempt) is tried again.
        self.lease_s = 2 * timeout_s + 5
        self._wake = threading.Event()
        self._stop = threading.Event()
        # Attempts under way, apart for the operator's receivers and for requests' callbacks:
        # slow callbacks someone gave cannot hold up the operator's deliveries.
        self._in_flight = {False: 0, True: 0}
        self._lock = threading.Lock()
        self._signal = change_signal(outbox.engine, self.wake)
        self._pool = ThreadPoolExecutor(2 * sends_at_once, thread_name_prefix="webhook-send")
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
        self._pruned_at = -PRUNE_EVERY_S

    def start(self) -> None:
        if self._signal is not None:
            self._signal.start()
        self._thread.start()

    def stop(self) -> None:
        """Stop claiming; attempts under way finish (each within its time-out)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        self._pool.shutdown(wait=True)
        if self._signal is not None:
            self._signal.stop()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait_s = self._round()
            except QueueError as exc:
                log.warning("webhooks: cannot reach the database: %s", exc)
                wait_s = ERROR_PAUSE_S
            except Exception:  # a bug must not end deliveries for the service's life
                log.exception("webhooks: a round failed")
                wait_s = ERROR_PAUSE_S
            if wait_s > 0 and self._wake.wait(wait_s) and not self._stop.is_set():
                self._stop.wait(SETTLE_S)
            self._wake.clear()

    def _round(self) -> float:
        """Route, claim and hand out what is due; seconds until the next round is needed."""
        try:
            while self.outbox.route(self.deliveries_for, self.retry_s):
                pass
        except QueueError:
            raise
        except Exception:  # deliveries already routed are still sent
            log.exception("webhooks: routing events failed")
        self._prune()
        for guarded in (False, True):
            with self._lock:
                free = self.sends_at_once - self._in_flight[guarded]
            if free <= 0:
                continue
            for delivery in self.outbox.claim_due(free, self.lease_s, guarded=guarded):
                with self._lock:
                    self._in_flight[guarded] += 1
                future = self._pool.submit(self._attempt, delivery)
                future.add_done_callback(functools.partial(self._sent, guarded))
        listening = self._signal is not None and self._signal.listening()
        wait_s = QUIET_POLL_S if listening else POLL_S
        with self._lock:
            if all(n >= self.sends_at_once for n in self._in_flight.values()):
                return wait_s  # a finished send wakes the loop
        due = self.outbox.next_due()
        if due is not None:
            wait_s = min(wait_s, max((due - self.outbox.clock()).total_seconds(), 0.0))
        return wait_s

    def _sent(self, guarded: bool, future: Future[None]) -> None:
        with self._lock:
            self._in_flight[guarded] -= 1
        if future.exception() is not None:
            log.error("webhooks: an attempt failed", exc_info=future.exception())
        self._wake.set()

    def _attempt(self, delivery: Delivery) -> None:
        try:
            answer = self._answer(delivery)
        except Exception as exc:  # recorded as the attempt's failure, never left unanswered
            log.exception("webhooks: delivery %s could not be sent", delivery.id)
            answer = Answer(None, "", f"cannot send: {type(exc).__name__}: {exc}")
        outcome = Outcome(answer.delivered, answer.status, answer.error, answer.excerpt)
        for tries_left in range(RECORD_TRIES - 1, -1, -1):
            try:
                recorded = self.outbox.record(delivery.id, delivery.attempts, outcome)
                break
            except QueueError as exc:
                if tries_left == 0 or self._stop.is_set():
                    log.warning(
                        "webhooks: delivery %s's answer not recorded (%s); it is sent again "
                        "when its attempt's lease ends",
                        delivery.id,
                        exc,
                    )
                    return
                self._stop.wait(ERROR_PAUSE_S)
        if recorded is None:
            return  # taken over meanwhile (a lease that ended): that attempt records its own
        if recorded.status == "failed":
            log.warning(
                "webhooks: gave up delivery %s (%s of job %s) to %s after %s attempts: %s",
                delivery.id,
                delivery.event,
                delivery.job_id,
                shown_url(delivery),
                recorded.attempts,
                answer.error,
            )
        elif not answer.delivered:
            log.info(
                "webhooks: delivery %s to %s: %s; trying again at %s",
                delivery.id,
                shown_url(delivery),
                answer.error,
                recorded.next_attempt_at.isoformat(timespec="seconds"),
            )

    def _answer(self, delivery: Delivery) -> Answer:
        server = delivery.subscription.removeprefix(MEDIA_SUBSCRIPTION_PREFIX)
        if server != delivery.subscription:
            if self._refresh is None:
                return Answer(None, "", "media servers are not refreshed by this instance")
            return self._refresh(server, json.loads(delivery.body), self.timeout_s)
        body = delivery.body.encode()
        headers = signed_headers(delivery.secret, delivery.message_id, int(time.time()), body)
        policy = self.callback_policy if delivery.guarded else TargetPolicy(guarded=False)
        return self._send(delivery.url, body, headers, policy=policy, timeout_s=self.timeout_s)

    def _prune(self) -> None:
        if self.retention_s is None or time.monotonic() - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = time.monotonic()
        removed = self.outbox.forget(self.outbox.clock() - timedelta(seconds=self.retention_s))
        if removed:
            log.info("webhooks: removed %s finished deliveries past their retention", removed)
