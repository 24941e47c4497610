"""Our Standard Webhooks signatures, checked by the specification's own Python library."""

from __future__ import annotations

import json
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from whisper_transcriber.service.webhooks.signing import (
    generate_secret,
    secret_problem,
    signed_headers,
)


def test_a_delivery_verifies_with_the_reference_library() -> None:
    secret = generate_secret()
    assert secret_problem(secret) is None
    body = json.dumps({"type": "job.done", "data": {"id": 7, "text": "naïve café"}}).encode()
    headers = signed_headers(secret, "msg_1", int(time.time()), body)
    assert Webhook(secret).verify(body, headers) == json.loads(body)


@pytest.mark.parametrize(
    "change",
    [
        lambda h, b: (h | {"webhook-id": "msg_2"}, b),
        lambda h, b: (h, b.replace(b"7", b"8")),
        lambda h, b: (h | {"webhook-timestamp": str(int(h["webhook-timestamp"]) + 1)}, b),
    ],
)
def test_a_changed_id_body_or_time_does_not_verify(change) -> None:  # type: ignore[no-untyped-def]
    secret = generate_secret()
    body = b'{"id": 7}'
    headers, changed = change(signed_headers(secret, "msg_1", int(time.time()), body), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(changed, headers)


def test_another_secret_or_an_old_timestamp_does_not_verify() -> None:
    body = b"{}"
    headers = signed_headers(generate_secret(), "msg_1", int(time.time()), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(body, headers)
    secret = generate_secret()
    old = signed_headers(secret, "msg_1", int(time.time()) - 3600, body)
    with pytest.raises(WebhookVerificationError):  # a replay an hour later
        Webhook(secret).verify(body, old)


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("hunter2", "starts with whsec_"),
        ("whsec_not base64!", "not base64"),
        ("whsec_c2hvcnQ=", "holds 24 to 64 bytes"),
    ],
)
def test_unusable_secrets_are_explained(secret: str, problem: str) -> None:
    assert problem in (secret_problem(secret) or "")
