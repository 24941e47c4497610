"""What a request's callback_url must satisfy (api/app_context.CallbackRules): an address the
callback rules let requests reach (service/webhooks/http.py), and a secret to sign with: the
request's own callback_secret, else the callback_secret setting."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from whisper_transcriber.db.webhook_outbox import EVENT_TYPES, CallbackRequest, EventType
from whisper_transcriber.service.webhooks.http import TargetPolicy, TargetRefused, check_url
from whisper_transcriber.service.webhooks.signing import secret_problem


@dataclass(frozen=True)
class RequestCallbacks:
    policy: TargetPolicy
    default_secret: str | None = None

    def callback(
        self,
        url: str,
        secret: str | None,
        events: Sequence[str] | None,
        transcript: bool,
    ) -> CallbackRequest:
        try:
            url = check_url(url, self.policy)
        except TargetRefused as exc:
            raise ValueError(f"callback_url: {exc}") from None
        secret = secret or self.default_secret
        if secret is None:
            raise ValueError(
                "callback_url needs a callback_secret to sign its deliveries with (whsec_ and "
                "base64 of 24-64 random bytes), as the service has no callback_secret setting"
            )
        problem = secret_problem(secret)
        if problem is not None:
            raise ValueError(f"callback_secret: {problem}")
        unknown = sorted(set(events or ()) - set(EVENT_TYPES))
        if unknown:
            raise ValueError(
                f"callback_events: {', '.join(unknown)} unknown; the events are "
                f"{', '.join(EVENT_TYPES)}"
            )
        chosen: tuple[EventType, ...] = (
            tuple(e for e in EVENT_TYPES if e in events) if events else EVENT_TYPES
        )
        return CallbackRequest(url, secret, chosen, transcript)
