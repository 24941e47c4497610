"""Standard Webhooks signatures (https://www.standardwebhooks.com): secrets, and the headers that
let a receiver check that a delivery is ours, unchanged and recent.

The signed content is "{webhook-id}.{webhook-timestamp}.{body}"; the signature is its HMAC-SHA256
with the secret's bytes, base64, as "v1,<signature>". A secret is "whsec_" and base64 of 24 to 64
random bytes, as the specification and its libraries expect.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_problem(secret: str) -> str | None:
    """Why this is not a usable secret; None when it is."""
    if not secret.startswith(SECRET_PREFIX):
        return f"a webhook secret starts with {SECRET_PREFIX} (make one: whisper-transcriber webhook-secret)"
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        return f"a webhook secret is {SECRET_PREFIX} and base64; this one is not base64"
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        return (
            f"a webhook secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes; this one "
            f"holds {len(key)}"
        )
    return None


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of a delivery attempt (the timestamp is the attempt's: receivers refuse
    old ones, so each attempt is signed afresh)."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, body),
    }
