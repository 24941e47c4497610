"""The jobs API on real jobs: listing with filters and cursors, transcripts, cancel and retry.

The app runs in this process on a real database; its jobs are transcribed by the real model."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers.media import FIXTURES
from whisper_transcriber.api.app import create_app
from whisper_transcriber.api.app_context import ApiContext
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.values import JobOptions, JobQuery, JobRecord
from whisper_transcriber.worker.confinement import Confinement
from whisper_transcriber.worker.engine import Engine
from whisper_transcriber.worker.job_runner import run_job
from whisper_transcriber.worker.originals import move_original
from whisper_transcriber.worker.outputs import render, rendered


@pytest.fixture
def media(tmp_path: Path) -> Path:
    folder = tmp_path / "media"
    folder.mkdir()
    return folder


def make_client(store: JobStore, media: Path, **context: Any) -> TestClient:
    return TestClient(
        create_app(
            ApiContext(
                store=store,
                default_options=JobOptions(),
                allowed_roots=[media],
                uploads_dir=media.parent / "uploads",
                **context,
            )
        )
    )


@pytest.fixture
def client(store: JobStore, media: Path) -> Iterator[TestClient]:
    with make_client(store, media) as test_client:
        yield test_client


def queue(store: JobStore, media: Path, name: str, origin: str = "api") -> JobRecord:
    fixture = {"wav": "speech_a.wav", "flac": "speech_b.flac", "ogg": "speech_c.ogg"}
    path = Path(shutil.copy(FIXTURES / fixture[name.rsplit(".", 1)[1]], media / name))
    job, _ = store.enqueue(path, JobOptions(formats=("txt",)), origin)
    return job


def run_next(store: JobStore, engine: Engine) -> JobRecord:
    claimed = store.claim("test-worker")
    assert claimed is not None
    run_job(store, engine, claimed, Confinement.of([Path(claimed.source_path).parent]))
    return store.get(claimed.id)


def test_listing_filters_and_pages_newest_first(
    client: TestClient, store: JobStore, engine: Engine, media: Path
) -> None:
    first = queue(store, media, "a.wav", "inbox:talks")
    done = run_next(store, engine)
    assert done.id == first.id and done.status is JobStatus.DONE
    others = [
        queue(store, media, "b.flac", "api"),
        queue(store, media, "c.ogg", "cli"),
        queue(store, media, "d.wav", "inbox:talks"),
        queue(store, media, "e.wav", "api"),
    ]
    ids = [job.id for job in reversed([first, *others])]

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/jobs", params=params).json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids and pages == 3

    def listed(**params: object) -> list[int]:
        response = client.get("/jobs", params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert listed(status="done") == [first.id]
    assert listed(origin="inbox:talks") == [others[2].id, first.id]
    assert listed(origin="api") == [others[3].id, others[0].id]
    # The older spellings of the same filter; origin wins where both are given.
    assert listed(inbox="talks") == [others[2].id, first.id]
    assert listed(source="api") == [others[3].id, others[0].id]
    assert listed(origin="api", inbox="talks") == [others[3].id, others[0].id]
    assert listed(text="C.OGG") == [others[1].id]  # in the path, case-blind
    assert listed(text="MUSEUM") == [first.id]  # in the transcript ("Welcome to the museum")
    assert listed(text="100%_") == []  # wildcards are literal
    created = store.get(others[1].id).created_at
    assert listed(since=created.isoformat()) == [j.id for j in reversed(others[1:])]
    assert listed(until=created.isoformat()) == [others[0].id, first.id]
    assert listed(status="queued", limit=1) == [others[3].id]

    [item] = client.get("/jobs", params={"status": "done"}).json()["items"]
    assert (item["origin"], item["source"], item["inbox"]) == ("inbox:talks", "talks", "talks")
    assert item["language"] == "en" and item["duration"] > 1
    assert item["links"]["transcript.srt"] == f"/jobs/{first.id}/transcript?format=srt"
    assert client.get("/jobs", params={"cursor": "x"}).status_code == 422
    assert client.get("/jobs", params={"limit": 501}).status_code == 422
    assert client.get("/jobs", params={"status": "lost"}).status_code == 422


def test_transcript_in_every_format(
    client: TestClient, store: JobStore, engine: Engine, media: Path
) -> None:
    queue(store, media, "talk.flac")
    job = run_next(store, engine)
    transcript = store.transcript(job.id)
    assert transcript is not None
    for fmt, media_type in [
        ("txt", "text/plain"),
        ("srt", "application/x-subrip"),
        ("vtt", "text/vtt"),
        ("json", "application/json"),
        ("tsv", "text/tab-separated-values"),
    ]:
        response = client.get(f"/jobs/{job.id}/transcript", params={"format": fmt})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(media_type)
        assert response.text == rendered(transcript, fmt, job.options)  # its subtitle rules
    assert client.get(f"/jobs/{job.id}/transcript").text == render(transcript, "txt")
    assert client.get(f"/jobs/{job.id}/transcript?format=pdf").status_code == 422
    queued = queue(store, media, "later.wav")
    missing = client.get(f"/jobs/{queued.id}/transcript")
    assert missing.status_code == 404
    assert missing.json() == {"detail": f"job {queued.id} has no transcript (queued)"}
    assert client.get("/jobs/999999/transcript").status_code == 404


def test_cancel_and_retry(client: TestClient, store: JobStore, media: Path) -> None:
    job = queue(store, media, "a.wav")
    cancelled = client.delete(f"/jobs/{job.id}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert store.claim("w") is None  # a cancelled job is never claimed
    again = client.delete(f"/jobs/{job.id}")
    assert again.status_code == 200  # cancelling twice is harmless
    retried = client.post(f"/jobs/{job.id}/retry")
    assert retried.status_code == 200 and retried.json()["status"] == "queued"
    conflict = client.post(f"/jobs/{job.id}/retry")
    assert conflict.status_code == 409
    assert "only failed or cancelled jobs can be retried" in conflict.json()["detail"]
    assert client.delete("/jobs/999999").status_code == 404
    assert client.post("/jobs/999999/retry").status_code == 404


def test_retry_puts_a_moved_original_back(
    client: TestClient, store: JobStore, engine: Engine, media: Path
) -> None:
    source = media / "notes.mp3"
    source.write_text("text, not audio\n")
    job, _ = store.enqueue(
        source, JobOptions(), "inbox:media", move_on_failure=media / "failed" / "notes.mp3"
    )
    failed = run_next(store, engine)
    assert failed.status is JobStatus.FAILED and failed.original_moved_to is not None
    assert not source.exists()
    response = client.post(f"/jobs/{job.id}/retry")
    assert response.status_code == 200, response.text
    assert source.read_text() == "text, not audio\n"
    assert store.get(job.id).original_moved_to is None
    assert move_original(store, store.get(job.id)) is None  # queued: nothing to move


def test_a_done_job_cannot_be_cancelled(
    client: TestClient, store: JobStore, engine: Engine, media: Path
) -> None:
    queue(store, media, "a.wav")
    job = run_next(store, engine)
    response = client.delete(f"/jobs/{job.id}")
    assert response.status_code == 409
    assert response.json() == {
        "detail": f"job {job.id} is done; only queued or running jobs can be cancelled"
    }
    assert store.get(job.id).status is JobStatus.DONE


def test_an_upload_becomes_a_job_like_any_other(
    client: TestClient, store: JobStore, engine: Engine, media: Path
) -> None:
    data = (FIXTURES / "speech_b.flac").read_bytes()
    response = client.post(
        "/transcribe",
        files={"file": ("../../etc/my talk.flac", data, "audio/flac")},
        data={"language": "en", "formats": "txt,srt", "vad_filter": "true"},
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/jobs/{job['id']}"
    assert job["source"] == "upload" and job["status"] == "queued"
    stored = Path(job["source_path"])
    assert stored.name == "my talk.flac"
    assert stored.parent.parent == media.parent / "uploads"  # a folder of its own, nothing above
    assert stored.read_bytes() == data
    assert job["options"]["formats"] == ["txt", "srt"] and job["options"]["vad_filter"] is True
    done = run_next(store, engine)
    assert done.status is JobStatus.DONE
    text = client.get(f"/jobs/{done.id}/transcript").text.lower()
    assert "quarterly" in text and "report" in text
    assert sorted(p.name for p in stored.parent.iterdir()) == [
        "my talk.flac",
        "my talk.srt",
        "my talk.txt",
    ]


def test_upload_limits_and_mistakes_leave_nothing_behind(store: JobStore, media: Path) -> None:
    uploads = media.parent / "uploads"
    data = (FIXTURES / "speech_a.wav").read_bytes()
    with make_client(store, media, max_upload_bytes=len(data) - 1) as client:
        too_big = client.post("/transcribe", files={"file": ("a.wav", data)})
        assert too_big.status_code == 413
        assert "larger than the limit" in too_big.json()["detail"]
        no_file = client.post("/transcribe", data={"language": "en"}, files={"x": ("a", b"1")})
        assert no_file.status_code == 400
        assert no_file.json() == {"detail": "no file in the form field 'file'"}
        bad_option = client.post(
            "/transcribe", files={"file": ("a.wav", data[:100])}, data={"formats": "pdf"}
        )
        assert bad_option.status_code == 422
        typo = client.post("/transcribe", files={"file": ("a.wav", data[:100])}, data={"lang": "x"})
        assert typo.status_code == 422
    assert list(uploads.iterdir()) == []
    assert store.list_jobs(JobQuery(), 100) == []


def test_bad_json_bodies(client: TestClient, media: Path) -> None:
    not_json = client.post(
        "/transcribe", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400
    assert not_json.json()["detail"].startswith("the body is not JSON")
    assert client.post("/transcribe", json={"language": "en"}).status_code == 422
    outside = client.post("/transcribe", json={"path": "/etc/passwd"})
    assert outside.status_code == 403


# -- what is the same work (db/identity.py) --------------------------------------------------


def test_the_same_file_and_options_answer_the_full_job_and_other_options_are_new(
    client: TestClient,
    store: JobStore,
    engine: Engine,
    media: Path,
) -> None:
    path = shutil.copy(FIXTURES / "speech_a.wav", media / "talk.wav")
    first = client.post("/transcribe", json={"path": str(path), "formats": ["txt"]})
    assert first.status_code == 202, first.text
    run_next(store, engine)

    again = client.post("/transcribe", json={"path": str(path), "formats": ["txt"]})
    assert again.status_code == 200
    assert again.json() == client.get(f"/jobs/{first.json()['id']}").json()
    assert again.json()["language"] == "en" and "transcript.srt" in again.json()["links"]

    srt = client.post("/transcribe", json={"path": str(path), "formats": ["srt"]})
    translated = client.post("/transcribe", json={"path": str(path), "task": "translate"})
    assert srt.status_code == translated.status_code == 202
    assert len({first.json()["id"], srt.json()["id"], translated.json()["id"]}) == 3


def test_force_and_run_again_queue_new_jobs(
    client: TestClient,
    store: JobStore,
    engine: Engine,
    media: Path,
) -> None:
    path = shutil.copy(FIXTURES / "speech_a.wav", media / "talk.wav")
    body = {"path": str(path), "formats": ["txt"]}
    first = client.post("/transcribe", json=body).json()
    done = run_next(store, engine)
    assert done.status is JobStatus.DONE and done.outputs == (str(media / "talk.txt"),)

    forced = client.post("/transcribe", json={**body, "force": True})
    assert forced.status_code == 202 and forced.json()["id"] != first["id"]
    # Later requests find the newest run of that work.
    assert client.post("/transcribe", json=body).json()["id"] == forced.json()["id"]
    rerun = run_next(store, engine)
    assert rerun.id == forced.json()["id"] and rerun.outputs == done.outputs  # its own, replaced

    again = client.post(f"/jobs/{rerun.id}/run-again")
    assert again.status_code == 201, again.text
    assert again.headers["location"] == f"/jobs/{again.json()['id']}"
    assert again.json()["options"] == first["options"] and again.json()["status"] == "queued"
    assert client.post(f"/jobs/{again.json()['id']}/run-again").status_code == 409  # queued
    assert client.post("/jobs/999999/run-again").status_code == 404


def test_an_upload_sent_again_attaches_to_its_job(
    client: TestClient,
    store: JobStore,
    engine: Engine,
    media: Path,
) -> None:
    data = (FIXTURES / "speech_b.flac").read_bytes()
    uploads = media.parent / "uploads"

    def send(**fields: str) -> dict[str, object]:
        response = client.post(
            "/transcribe",
            files={"file": ("talk.flac", data, "audio/flac")},
            data={"formats": "txt", **fields},
        )
        assert response.status_code in (200, 202), response.text
        return dict(response.json())

    first = send()
    assert send()["id"] == first["id"]  # queued
    assert len(list(uploads.iterdir())) == 1  # the copy sent again is not kept
    run_next(store, engine)
    assert send()["id"] == first["id"]  # done
    assert send(formats="srt")["id"] != first["id"]  # other options
    assert send(force="true")["id"] != first["id"]
    assert len(list(uploads.iterdir())) == 3


def test_a_path_whose_name_is_not_utf8_answers_400(client: TestClient, media: Path) -> None:
    (Path(os.fsdecode(os.fsencode(media) + b"/caf\xe9.wav"))).write_bytes(b"speech")
    # JSON can carry the escaped byte as a lone surrogate: the file exists under that name.
    body = f'{{"path": "{media}/caf\\udce9.wav"}}'
    response = client.post(
        "/transcribe", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert "not valid UTF-8" in response.json()["detail"]


def test_a_path_whose_file_is_not_the_one_expected_answers_412_and_records_nothing(
    client: TestClient, store: JobStore, media: Path
) -> None:
    """A client on another machine sends its file's size and mtime: the server's file at that
    path is another one, so nothing is recorded (its inbox still takes it) and the client
    uploads instead."""
    path = Path(shutil.copy(FIXTURES / "speech_a.wav", media / "talk.wav"))
    os.utime(path, ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
    size = path.stat().st_size
    body: dict[str, object] = {"path": str(path), "formats": ["txt"]}
    for expected in (
        {"expected_size": size + 1, "expected_mtime_ns": 1_700_000_000_123_456_789},
        {"expected_size": size, "expected_mtime_ns": 1_700_000_001_123_456_789},
        {"expected_size": size, "expected_mtime_ns": 1_700_000_001_000_000_000},  # seconds
        {"expected_size": size + 1},
        {"expected_mtime_ns": 1_600_000_000_000_000_000},
    ):
        refused = client.post("/transcribe", json={**body, **expected, "force": True})
        assert refused.status_code == 412, (expected, refused.text)
        detail = refused.json()["detail"]
        assert detail.startswith(f"the server's file at {path} is not the one expected: it has ")
        assert detail.endswith("no job was created")
        assert f"{size} bytes, modified 2023-11-14T22:13:20.123457+00:00" in detail
        assert store.list_jobs(JobQuery(), 100) == []

    # The same file, its mtime kept at a coarser resolution by the client's side: accepted.
    for expected in (
        {"expected_size": size, "expected_mtime_ns": 1_700_000_000_123_456_789},
        {"expected_size": size, "expected_mtime_ns": 1_700_000_000_000_000_000},
        {"expected_size": size, "expected_mtime_ns": 1_700_000_000_123_000_000},
    ):
        accepted = client.post("/transcribe", json={**body, **expected})
        assert accepted.status_code in (200, 202), (expected, accepted.text)
    [job] = store.list_jobs(JobQuery(), 100)
    assert job.status is JobStatus.QUEUED and job.origin == "api"

    # An existing job is left as it is too.
    again = client.post("/transcribe", json={**body, "expected_size": 0, "force": True})
    assert again.status_code == 412
    assert store.list_jobs(JobQuery(), 100) == [job]


def test_the_expected_fields_are_in_the_openapi_description(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/transcribe"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert {"expected_size", "expected_mtime_ns"} <= set(schema["properties"])
    assert "412" in schema["properties"]["expected_size"]["description"]
    assert "412" in operation["responses"]
    assert "expected_size" in operation["description"]
