"""GET /status and GET /options on a real database, and the inbox scans behind /status recorded
by a real watcher on real folders (on any instance, so read from the database)."""

from __future__ import annotations

import errno
import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, text
from watchdog.observers import Observer

from tests.helpers.apps import app_for
from tests.helpers.inboxes import wait_for_jobs, watching
from tests.helpers.jobs import Clock
from tests.helpers.media import FIXTURES, place
from tests.helpers.postgres import POSTGRES_ADMIN_URL
from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.db.inbox_scans import InboxScans
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.transcript import Segment, Transcript
from whisper_transcriber.db.values import OUTPUT_FORMATS, JobOptions
from whisper_transcriber.db.worker_registry import WorkerRegistry, WorkerRole, WorkerState


@dataclass
class PoolState:
    """What a WorkerPool reports (api/app_context.py WorkerStatus), without its processes."""

    size: int
    up: int
    running: int
    restarts: int = 0
    recycles: int = 0

    def ready(self) -> int:
        return self.up

    def busy(self) -> int:
        return self.running


def test_status_of_a_new_service(store: JobStore, tmp_path: Path) -> None:
    with app_for(store, tmp_path) as client:
        response = client.get("/status")
    assert response.status_code == 200
    assert response.json() == {
        "workers": None,  # this process runs no pool (an api-only instance)
        "jobs": {job_status.value: 0 for job_status in JobStatus},
        "queue_depth": 0,
        "audio_s": 0.0,
        "processing_s": 0.0,
        "real_time_factor": 0.0,
        "inboxes": [],
        "instances": [],  # no worker is registered anywhere
    }


def test_status_counts_jobs_totals_and_workers(db_engine: Engine, tmp_path: Path) -> None:
    clock = Clock()
    store = JobStore(db_engine, clock=clock)
    done, queued, cancelled = (
        store.enqueue(place(FIXTURES / "speech_a.wav", tmp_path, name), JobOptions(), "api")[0]
        for name in ("a.wav", "b.wav", "c.wav")
    )
    claimed = store.claim("w")
    assert claimed is not None and claimed.id == done.id
    clock.advance(2)  # ten seconds of audio in two: five times real time
    store.complete(
        done.id, claimed.attempts, Transcript("en", 1.0, 10.0, (Segment(0, 0, 10, "x"),))
    )
    store.cancel(cancelled.id)
    pool = PoolState(size=3, up=2, running=1, restarts=1, recycles=4)
    with app_for(store, tmp_path, workers=pool) as client:
        body = client.get("/status").json()
    assert body["workers"] == {
        "size": 3,
        "up": 2,
        "busy": 1,
        "idle": 1,
        "restarts": 1,
        "recycles": 4,
    }
    assert body["jobs"] == {"queued": 1, "running": 0, "done": 1, "failed": 0, "cancelled": 1}
    assert body["queue_depth"] == 1
    assert (body["audio_s"], body["processing_s"], body["real_time_factor"]) == (10.0, 2.0, 5.0)
    assert store.get(queued.id).status is JobStatus.QUEUED


def test_status_shows_every_instances_registered_workers(db_engine: Engine, tmp_path: Path) -> None:
    """From the registry, whichever instance answers: live, stale and stopped workers."""
    clock = Clock()
    store = JobStore(db_engine, clock=clock)
    registry = WorkerRegistry(db_engine, stale_after_s=30, clock=clock)
    for worker_id, instance in (("a:1:1", "box-a"), ("a:2:2", "box-a"), ("b:1:3", "box-b")):
        registry.register(worker_id, instance, WorkerRole.SERVICE)
    registry.register("c:1:4", "box-c", WorkerRole.COMMAND)
    registry.stopped("c:1:4")
    clock.advance(40)
    registry.beat("a:1:1", WorkerState.BUSY, 12)
    registry.beat("b:1:3", WorkerState.IDLE, None)
    with app_for(store, tmp_path, registry=registry) as client:
        instances = client.get("/status").json()["instances"]
        metrics = client.get("/metrics").text
    assert [(i["name"], i["live"], i["stale"]) for i in instances] == [
        ("box-a", 1, 1),
        ("box-b", 1, 0),
    ]
    box_a = {worker["id"]: worker for worker in instances[0]["workers"]}
    assert (box_a["a:1:1"]["state"], box_a["a:1:1"]["job_id"]) == ("busy", 12)
    assert (box_a["a:2:2"]["stale"], box_a["a:2:2"]["heartbeat_age_s"]) == (True, 40.0)
    assert box_a["a:1:1"]["pid"] == os.getpid() and box_a["a:1:1"]["role"] == "service"
    assert (
        'whisper_transcriber_registered_workers{instance="box-a",role="service",state="busy"} 1.0'
        in metrics
    )
    assert (
        'whisper_transcriber_registered_workers{instance="box-a",role="service",state="stale"} 1.0'
        in metrics
    )
    assert (
        'whisper_transcriber_registered_workers{instance="box-b",role="service",state="idle"} 1.0'
        in metrics
    )
    assert "box-c" not in metrics


def test_a_watched_inbox_shows_its_latest_scan(tmp_path: Path, database_url: str) -> None:
    inbox = tmp_path / "calls"
    inbox.mkdir()
    place(FIXTURES / "speech_a.wav", inbox, "monday.wav")
    place(FIXTURES / "speech_c.ogg", inbox, "tuesday.ogg")
    place(FIXTURES / "speech_a.wav", inbox, "wednesday.wav.part")  # still downloading: not counted
    before = datetime.now(UTC)
    with watching(database_url, inbox) as (watcher, store):
        [first] = InboxScans(store).latest()  # recorded by the start-up scan
        assert (first.name, first.path) == ("calls", str(inbox.resolve()))
        assert (first.observer, first.poll_interval_s) == ("native", None)
        assert first.last_scan_new == 2
        assert first.last_scan_at is not None and first.last_scan_at >= before
        assert first.last_scan_at == watcher.last_scan["calls"]
        assert first.scanned_by == f"{socket.gethostname()}:{os.getpid()}"
        wait_for_jobs(store, 2)
        assert watcher.rescan() == 0
        [latest] = InboxScans(store).latest()
        assert latest.last_scan_new == 0
        assert latest.last_scan_at is not None and latest.last_scan_at > first.last_scan_at
        with app_for(store, tmp_path) as client:
            body = client.get("/status").json()
    [shown] = body["inboxes"]
    assert datetime.fromisoformat(shown.pop("last_scan_at")) == latest.last_scan_at
    assert shown == {
        "name": "calls",
        "path": str(inbox.resolve()),
        "observer": "native",
        "poll_interval_s": None,
        "last_scan_new": 0,
        "scanned_by": latest.scanned_by,
    }
    assert body["jobs"]["queued"] == 2


def test_polling_inboxes_are_recorded_as_polling_also_when_inotify_failed(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    class NoInotify(Observer):
        """inotify at its watch limit: what a big NAS tree meets on a default kernel."""

        def start(self) -> None:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr("whisper_transcriber.watcher.inbox.Observer", NoInotify)
    nas, local = tmp_path / "nas", tmp_path / "local"
    nas.mkdir()
    local.mkdir()
    with watching(sqlite_url, f"{nas}?observer=polling&poll_interval_s=0.5", local) as (
        watcher,
        store,
    ):
        scans = InboxScans(store).latest()
        default_interval = {inbox.name: inbox.poll_interval_s for inbox in watcher.intake.inboxes}
    assert [scan.name for scan in scans] == ["local", "nas"]  # by name
    assert [(scan.observer, scan.poll_interval_s) for scan in scans] == [
        ("polling", default_interval["local"]),  # asked for native events, fell back
        ("polling", 0.5),
    ]


def test_a_database_away_at_start_does_not_stop_the_watcher(
    tmp_path: Path, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    place(FIXTURES / "speech_a.wav", inbox, "talk.wav")
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{postgres_url.rsplit("/", 1)[1]}" WITH (FORCE)')
    with (
        caplog.at_level(logging.WARNING, logger="whisper_transcriber.watcher.inbox"),
        watching(postgres_url, inbox) as (watcher, _store),
    ):
        assert watcher.last_scan == {}  # started, without its scan; the scheduler's comes later
    [warning] = [
        record for record in caplog.records if record.name == "whisper_transcriber.watcher.inbox"
    ]
    assert warning.getMessage().startswith("start-up scan skipped: ")


def test_a_scan_the_database_cannot_record_still_finds_the_files(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    place(FIXTURES / "speech_a.wav", inbox, "talk.wav")
    engine = make_engine(database_url)
    with engine.begin() as conn:  # jobs can be written, scans cannot
        conn.execute(text("DROP TABLE inbox_scans"))
    engine.dispose()
    with (
        caplog.at_level(logging.WARNING, logger="whisper_transcriber.watcher.inbox"),
        watching(database_url, inbox) as (watcher, store),
    ):
        assert set(watcher.last_scan) == {"inbox"}
        wait_for_jobs(store, 1)  # the start-up scan found the file all the same
    [warning] = [
        record for record in caplog.records if record.name == "whisper_transcriber.watcher.inbox"
    ]
    assert warning.getMessage().startswith("could not record the scan of inbox: ")


def test_options_are_what_the_submit_form_offers(store: JobStore, tmp_path: Path) -> None:
    defaults = JobOptions(language="de", formats=("srt", "txt"), vad_filter=True)
    with app_for(store, tmp_path, default_options=defaults, max_upload_bytes=1234) as client:
        body = client.get("/options").json()
    assert JobOptions.model_validate(body.pop("defaults")) == defaults
    languages = body.pop("languages")
    assert body == {
        "formats": list(OUTPUT_FORMATS),
        "tasks": ["transcribe", "translate"],
        "models": ["default"],
        "max_upload_bytes": 1234,
    }
    assert (languages["en"], languages["de"], languages["jw"]) == ("english", "german", "javanese")
    assert len(languages) >= 99  # every language multilingual Whisper models know
