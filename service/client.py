"""A client of a running service over HTTP: submit a file (by its path when the service sees the
same file, by upload otherwise), follow jobs through /events, fetch transcripts.

Errors that make the service unusable as a whole (unreachable, the key refused) are a
SettingError naming the setting to fix (server_url, api_key); a file the service refuses is a
Refused with the service's reason, for that file alone.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from whisper_transcriber.service.settings import SettingError
from whisper_transcriber.worker.confinement import OUTSIDE_ALLOWED_FOLDERS

# httpx logs each request at INFO: the command's own lines say what matters.
logging.getLogger("httpx").setLevel(logging.WARNING)

# A job as GET /jobs/{id} and each /events message show it (api/schemas.py JobOut).
Job = dict[str, Any]
FINAL_STATUSES = frozenset({"done", "failed", "cancelled"})
REQUEST_TIMEOUT_S = 30.0
# Whole uploads take as long as they take; a stalled one is noticed after this.
UPLOAD_IDLE_TIMEOUT_S = 300.0
# The service pings /events every 15 s (api/routes/events.py): three missed pings is a dead line.
EVENTS_IDLE_TIMEOUT_S = 45.0
# Following the events: pauses between reconnections, and how long the service may stay away.
RECONNECT_PAUSES_S = (0.2, 0.5, 1.0, 2.0, 5.0)
GIVE_UP_AFTER_S = 120.0
# Path answers after which the file goes as an upload: outside the allowed folders (403), not
# there (404), a path the server's file system cannot have (400), another file than ours at that
# path (412: the service checked expected_size and expected_mtime_ns before recording anything).
UPLOAD_INSTEAD = frozenset({400, 403, 404, 412})
SUBSCRIBED = "subscribed"  # the comment /events sends once every later change will reach us


class Refused(Exception):
    """The service refused this file (or its options): its status and reason."""

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(detail)


class Disconnected(Exception):
    """The event stream broke off (the service restarted, the network dropped)."""


def is_final(job: Job) -> bool:
    return job.get("status") in FINAL_STATUSES


def _detail(response: httpx.Response) -> str:
    """The service's reason ({"detail": ...}), or the status line."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):  # a validation error: [{"loc": [...], "msg": ...}, ...]
        detail = "; ".join(
            f"{'.'.join(str(part) for part in item.get('loc', ())[1:])}: {item.get('msg')}"
            if isinstance(item, dict)
            else str(item)
            for item in detail
        )
    if detail:
        return str(detail)
    return f"HTTP {response.status_code} {response.reason_phrase}".strip()


class ServiceClient:
    """One service at base_url (http://host:9000), with the API key when there is one."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout_s: float = REQUEST_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"X-API-Key": api_key} if api_key else {}
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout_s,
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- requests -------------------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer to one request; SettingError where the service cannot be used at all."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from exc
        self._check_usable(response)
        return response

    def unreachable(self, exc: Exception) -> SettingError:
        reason = str(exc) or type(exc).__name__
        return SettingError("server_url", f"cannot reach the service at {self.base_url}: {reason}")

    def _check_usable(self, response: httpx.Response) -> None:
        if response.status_code == 401:
            raise SettingError(
                "api_key", f"the service at {self.base_url} refused it: {_detail(response)}"
            )
        if response.status_code in (502, 503, 504) and not response.headers.get(
            "content-type", ""
        ).startswith("application/json"):
            raise SettingError(
                "server_url", f"{self.base_url} answers {_detail(response)}: is the service up?"
            )

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise SettingError(
                "server_url",
                f"{self.base_url} answered {response.request.url.path} with something other "
                "than JSON: is it a whisper-transcriber service?",
            ) from exc

    def check_service(self) -> None:
        """SettingError (server_url) unless a whisper-transcriber service answers at base_url:
        GET /health answers {"status": "ok"} (api/routes/health.py), so that another server, or
        ours under a wrong path, is one line and not a refusal per file."""
        response = self._send("GET", "/health")
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or body != {"status": "ok"}:
            answer = f"HTTP {response.status_code}"
            if response.status_code != 200:
                detail = _detail(response)
                answer = detail if detail.startswith("HTTP ") else f"{answer} ({detail})"
            raise SettingError(
                "server_url",
                f"{self.base_url} is not a whisper-transcriber service: GET "
                f"{response.request.url.path} answered {answer} (the service answers "
                '{"status": "ok"}); check the URL and its path',
            )

    def status(self) -> dict[str, Any]:
        """GET /status: the service's workers (null without any) and queue."""
        response = self._send("GET", "/status")
        if response.status_code != 200:
            raise SettingError("server_url", f"{self.base_url}/status: {_detail(response)}")
        answer: dict[str, Any] = self._json(response)
        return answer

    def job(self, job_id: int) -> Job:
        response = self._send("GET", f"/jobs/{job_id}")
        if response.status_code != 200:
            raise Refused(response.status_code, _detail(response))
        job: Job = self._json(response)
        return job

    def source_refusal(self, job_id: int) -> str | None:
        """Why the service cannot open the job's source as queued (GET /jobs/{id}/audio, one
        byte of it): no file at that path for it (404), or another file there (410); None when
        it serves it, or when the file only lies outside the folders it serves to browsers
        (it found a file there, and workers open a CLI job's file wherever it is)."""
        response = self._send("GET", f"/jobs/{job_id}/audio", headers={"Range": "bytes=0-0"})
        detail = _detail(response)
        if response.status_code in (200, 206) or (
            response.status_code == 410 and detail.endswith(OUTSIDE_ALLOWED_FOLDERS)
        ):
            return None
        return detail

    def transcript(self, job_id: int, fmt: str) -> bytes:
        response = self._send("GET", f"/jobs/{job_id}/transcript", params={"format": fmt})
        if response.status_code != 200:
            raise Refused(response.status_code, _detail(response))
        return response.content

    def submit_path(
        self, path: Path, options: Mapping[str, Any], expected: os.stat_result | None = None
    ) -> Job:
        """POST /transcribe {"path": ...}: the server's job for its file at that path. With
        expected (our file's stat), the service checks first that its file there has the same
        size and modification time, and refuses with 412, recording nothing, otherwise."""
        body: dict[str, Any] = {"path": str(path), **options}
        if expected is not None:
            body["expected_size"] = expected.st_size
            body["expected_mtime_ns"] = expected.st_mtime_ns
        response = self._send("POST", "/transcribe", json=body)
        return self._submitted(response)

    def upload(self, path: Path, options: Mapping[str, Any]) -> Job:
        """POST /transcribe as multipart: the file's bytes, the options as form fields."""
        fields = {name: _form_value(value) for name, value in options.items()}
        timeout = httpx.Timeout(REQUEST_TIMEOUT_S, read=UPLOAD_IDLE_TIMEOUT_S)
        with path.open("rb") as content:
            response = self._send(
                "POST",
                "/transcribe",
                data=fields,
                files={"file": (path.name, content, "application/octet-stream")},
                timeout=timeout,
            )
        return self._submitted(response)

    def _submitted(self, response: httpx.Response) -> Job:
        if response.status_code not in (200, 201, 202):
            raise Refused(response.status_code, _detail(response))
        job: Job = self._json(response)
        return job

    # -- events -----------------------------------------------------------------------------

    @contextmanager
    def events(self) -> Iterator[Iterator[Job | str]]:
        """GET /events: SUBSCRIBED once the service will send every later change, then each
        changed job. Disconnected when the stream breaks off or ends."""
        timeout = httpx.Timeout(REQUEST_TIMEOUT_S, read=EVENTS_IDLE_TIMEOUT_S)
        try:
            with self._http.stream("GET", "/events", timeout=timeout) as response:
                self._check_usable(response)
                if response.status_code != 200:
                    response.read()
                    raise SettingError("server_url", f"{self.base_url}/events: {_detail(response)}")
                yield _messages(response)
        except httpx.TransportError as exc:
            raise Disconnected(str(exc) or type(exc).__name__) from exc


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def _messages(response: httpx.Response) -> Iterator[Job | str]:
    """Server-sent events: a comment line is ': text', a message is data lines ended by a blank."""
    data: list[str] = []
    try:
        for line in response.iter_lines():
            if not line:
                if data:
                    try:
                        message = json.loads("\n".join(data))
                    except ValueError:  # not a job: nothing of ours
                        message = None
                    data = []
                    if isinstance(message, dict):
                        yield message
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "":
                if value.strip() == SUBSCRIBED:
                    yield SUBSCRIBED
            elif field == "data":
                data.append(value)
    except httpx.TransportError as exc:
        raise Disconnected(str(exc) or type(exc).__name__) from exc
    raise Disconnected("the service ended the event stream")


@dataclass(frozen=True)
class Following:
    """What to do while following: each change as it comes; how to pause between tries."""

    on_change: Callable[[Job], None]
    sleep: Callable[[float], None] = time.sleep


def follow(client: ServiceClient, jobs: Mapping[int, Job], following: Following) -> dict[int, Job]:
    """Each job once it has ended, followed through /events. Every (re)connection re-reads the
    jobs not yet ended once the subscription stands, so that no change is missed: not between
    submitting and subscribing, nor while the connection was down."""
    current = dict(jobs)
    broken_since: float | None = None
    tries = 0
    while not all(is_final(job) for job in current.values()):
        try:
            with client.events() as messages:
                for message in messages:
                    if message == SUBSCRIBED:
                        broken_since, tries = None, 0
                        for job_id, job in list(current.items()):
                            if not is_final(job):
                                current[job_id] = _reread(client, job)
                                following.on_change(current[job_id])
                    elif isinstance(message, dict) and message.get("id") in current:
                        current[message["id"]] = message
                        following.on_change(message)
                    if all(is_final(job) for job in current.values()):
                        return current
        except (Disconnected, SettingError) as exc:
            if isinstance(exc, SettingError) and exc.setting != "server_url":
                raise  # the key refused: no use trying again
            now = time.monotonic()
            broken_since = broken_since if broken_since is not None else now
            if now - broken_since > GIVE_UP_AFTER_S:
                raise SettingError(
                    "server_url",
                    f"lost the service at {client.base_url} ({exc}); its jobs go on there: run "
                    "the command again to follow them",
                ) from exc
            following.sleep(RECONNECT_PAUSES_S[min(tries, len(RECONNECT_PAUSES_S) - 1)])
            tries += 1
    return current


def _reread(client: ServiceClient, job: Job) -> Job:
    try:
        return client.job(int(job["id"]))
    except Refused as exc:  # gone: the job retention removed it, or another hand deleted it
        return {**job, "status": "failed", "error": f"the job is gone from the service: {exc}"}
