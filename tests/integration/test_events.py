"""GET /events: server-sent events of real job changes in a real database."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from fastapi.testclient import TestClient

from tests.helpers.waiting import wait_until
from whisper_transcriber.api.app import create_app
from whisper_transcriber.api.app_context import ApiContext
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.transcript import Segment, Transcript
from whisper_transcriber.db.values import JobOptions

WAIT_S = 30


class Seen:
    """Events read so far, shared between the reading test and the thread that makes changes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, int]] = []

    def add(self, kind: str, job_id: int) -> None:
        with self.lock:
            self.events.append((kind, job_id))

    def has(self, kind: str, job_id: int) -> Callable[[], bool]:
        def check() -> bool:
            with self.lock:
                return (kind, job_id) in self.events

        return check


def job_events(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, object]]]:
    kind = None
    for line in lines:
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: ") and kind is not None:
            yield kind, json.loads(line.removeprefix("data: "))
            kind = None


def test_events_follow_jobs_through_their_lives(store: JobStore, tmp_path: Path) -> None:
    paths = []
    for name in ("a.wav", "b.wav"):
        paths.append(tmp_path / name)
        paths[-1].write_bytes(name.encode())
    context = ApiContext(store=store, default_options=JobOptions(), allowed_roots=[tmp_path])
    seen = Seen()
    subscribed = threading.Event()
    errors: list[BaseException] = []

    def then_wait(kind: str, job_id: int) -> None:
        wait_until(seen.has(kind, job_id), WAIT_S, f"the {kind} event of job {job_id}")

    def change_jobs() -> None:
        """Each change waits until its event was read: every state is seen, none coalesced."""
        try:
            subscribed.wait(WAIT_S)
            job, _ = store.enqueue(paths[0], JobOptions(), "api")
            then_wait("queued", job.id)
            claimed = store.claim("w")
            assert claimed is not None
            then_wait("started", job.id)
            store.heartbeat(job.id, claimed.attempts, progress=0.5)
            then_wait("progress", job.id)
            segment = Segment(0, 0.0, 2.0, " hello")
            store.complete(job.id, claimed.attempts, Transcript("en", 1.0, 2.0, (segment,)))
            then_wait("done", job.id)
            other, _ = store.enqueue(paths[1], JobOptions(), "api")
            then_wait("queued", other.id)
            store.cancel(other.id)
        except BaseException as exc:
            errors.append(exc)

    with TestClient(create_app(context)) as client:
        changer = threading.Thread(target=change_jobs)
        changer.start()
        with client.stream("GET", "/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.iter_lines()
            for line in lines:
                if line.startswith(": subscribed"):
                    break
            subscribed.set()
            received = []
            finished: dict[str, object] = {}
            for kind, job in job_events(lines):
                assert isinstance(job["id"], int)
                seen.add(kind, job["id"])
                received.append((kind, job["status"], job["progress"]))
                if kind == "done":
                    finished = job
                if kind == "cancelled" or errors:
                    break
        changer.join()
    assert errors == []
    assert received == [
        ("queued", "queued", 0.0),
        ("started", "running", 0.0),
        ("progress", "running", 0.5),
        ("done", "done", 1.0),
        ("queued", "queued", 0.0),
        ("cancelled", "cancelled", 0.0),
    ]
    # A finished job's event shows it as GET /jobs/{id} does: language, duration, transcript links.
    with TestClient(create_app(context)) as client:
        assert finished == client.get(f"/jobs/{finished['id']}").json()
    assert finished["duration"] == 2.0
    assert finished["language"] == "en"
