"""Signed links to a job's audio: an `<audio src>` cannot send the API key, so the link carries
an expiry and an HMAC of it made with the key instead. Pure functions of (key, job, time)."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qs

AUDIO_LINK_LIFETIME_S = 6 * 3600
# Only this exact path may be opened with a signature instead of the key.
AUDIO_PATH = re.compile(r"/jobs/([0-9]{1,19})/audio")


@dataclass(frozen=True)
class AudioLink:
    url: str
    expires_at: datetime | None  # None: no API key is set, the plain URL needs none


def audio_url(job_id: int) -> str:
    return f"/jobs/{job_id}/audio"


def audio_signature(api_key: str, job_id: int, expires: int) -> str:
    message = f"audio:{job_id}:{expires}".encode()
    return hmac.new(api_key.encode(), message, hashlib.sha256).hexdigest()


def signed_audio_link(
    api_key: str | None, job_id: int, now: float, lifetime_s: int = AUDIO_LINK_LIFETIME_S
) -> AudioLink:
    """A link to the job's audio that works without the key until now + lifetime_s."""
    if not api_key:
        return AudioLink(audio_url(job_id), None)
    expires = int(now) + lifetime_s
    signature = audio_signature(api_key, job_id, expires)
    return AudioLink(
        f"{audio_url(job_id)}?expires={expires}&signature={signature}",
        datetime.fromtimestamp(expires, UTC),
    )


def audio_link_is_valid(
    api_key: str, job_id: int, expires: str, signature: str, now: float
) -> bool:
    """Whether a signature made with this key for this job and expiry holds, and has not expired."""
    # Bounded before int(): a huge digit string must be a refusal, not an error.
    if not (expires.isascii() and expires.isdigit() and len(expires) <= 12) or int(expires) <= now:
        return False
    expected = audio_signature(api_key, job_id, int(expires))
    return hmac.compare_digest(expected.encode(), signature.encode())


def is_signed_audio_request(api_key: str, path: str, query_string: bytes, now: float) -> bool:
    """For the key middleware: a request for a job's audio that carries a valid signed link."""
    match = AUDIO_PATH.fullmatch(path)
    if match is None:
        return False
    query = parse_qs(query_string.decode("latin-1"))
    expires, signature = query.get("expires", []), query.get("signature", [])
    if len(expires) != 1 or len(signature) != 1:
        return False
    return audio_link_is_valid(api_key, int(match.group(1)), expires[0], signature[0], now)
