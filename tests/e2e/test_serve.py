"""`whisper-transcriber serve` end to end: inbox, HTTP API, worker processes, SIGTERM."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

from tests.helpers.cli import clean_env
from tests.helpers.media import FIXTURES
from tests.helpers.service import is_alive, running_service, worker_processes
from tests.helpers.waiting import wait_until
from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.values import JobQuery, JobRecord

JOB_TIMEOUT_S = 120
CHUNK = 16 * 1024


def write_in_chunks(source: Path, target: Path) -> None:
    with target.open("wb") as out:
        data = source.read_bytes()
        for start in range(0, len(data), CHUNK):
            out.write(data[start : start + CHUNK])
            out.flush()


def test_file_dropped_into_inbox_is_transcribed(
    database_url: str, tmp_path: Path, expected_speech: dict[str, dict[str, object]]
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    source = FIXTURES / "speech_b.flac"
    store = JobStore(make_engine(database_url))

    def finished_jobs() -> list[JobRecord]:
        jobs = store.list_jobs(JobQuery(), 100)
        return jobs if jobs and all(job.status.is_final for job in jobs) else []

    with running_service("--database-url", database_url, "--inbox", inbox, cwd=tmp_path) as service:
        (inbox / "partial.wav.part").write_bytes(b"not yet")
        write_in_chunks(source, inbox / source.name)
        [job] = wait_until(finished_jobs, JOB_TIMEOUT_S, "the inbox file's job to finish")
        assert job.status is JobStatus.DONE, job.error
        assert job.source_path == str(inbox / source.name)
        assert job.origin == "inbox:inbox"
        keywords = expected_speech[source.name]["keywords"]
        assert isinstance(keywords, list)
        for fmt in ("txt", "srt", "vtt", "json", "tsv"):
            text = (inbox / f"speech_b.{fmt}").read_text().lower()
            assert all(keyword in text for keyword in keywords), (fmt, text)
        assert service.stop() == 0
    jobs = store.list_jobs(JobQuery(), 100)
    assert [job.source_path for job in jobs] == [str(inbox / source.name)]
    store.engine.dispose()


def test_transcribe_by_server_path(database_url: str, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    outside = tmp_path / "private"
    outside.mkdir()
    shutil.copy(FIXTURES / "speech_a.wav", outside / "secret.wav")
    (inbox / "escape.wav").symlink_to(outside / "secret.wav")
    target = inbox / "talk.wav"
    shutil.copy(FIXTURES / "speech_a.wav", target)
    # A long settle time keeps the watcher out of the way: the API is what is tested here.
    env = clean_env(WHISPER_TRANSCRIBER_SETTLE_S="600")
    with running_service(
        "--database-url", database_url, "--inbox", inbox, "--formats", "txt,json",
        cwd=tmp_path, env=env,
    ) as service:  # fmt: skip
        client = service.client
        created = client.post("/transcribe", json={"path": str(target), "language": "en"})
        assert created.status_code == 202, created.text
        job = created.json()
        assert job["status"] == "queued" and job["id"] > 0
        assert created.headers["location"] == f"/jobs/{job['id']}"
        assert job["options"]["language"] == "en"

        again = client.post("/transcribe", json={"path": str(target), "language": "en"})
        assert again.status_code == 200 and again.json()["id"] == job["id"]
        other_options = client.post("/transcribe", json={"path": str(target)})
        assert other_options.status_code == 202 and other_options.json()["id"] != job["id"]
        # Cancelled: two jobs of one file publishing at once would number one set of outputs.
        assert client.delete(f"/jobs/{other_options.json()['id']}").status_code == 200

        for path, status in [
            (str(outside / "secret.wav"), 403),
            (f"{inbox}/../private/secret.wav", 403),
            (str(inbox / "escape.wav"), 403),
            (str(inbox / "nope.wav"), 404),
        ]:
            response = client.post("/transcribe", json={"path": path})
            assert response.status_code == status, (path, response.text)
        assert client.post("/transcribe", json={"nopath": 1}).status_code == 422
        assert client.post("/transcribe", content=b"{not json").status_code == 400

        def finished() -> dict[str, object] | None:
            current: dict[str, object] = client.get(f"/jobs/{job['id']}").json()
            return current if current["status"] in ("done", "failed") else None

        final = wait_until(finished, JOB_TIMEOUT_S, "the submitted job to finish")
        assert final["status"] == "done", final
        assert final["outputs"] == [str(inbox / "talk.txt"), str(inbox / "talk.json")]
        data = json.loads((inbox / "talk.json").read_text())
        assert "museum" in data["text"].lower()
        assert client.get("/jobs/999999").status_code == 404
        assert service.stop() == 0


def test_workers_exit_when_the_service_is_killed(sqlite_url: str, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with running_service(
        "--database-url", sqlite_url, "--inbox", inbox, "--workers", "2", cwd=tmp_path
    ) as service:
        pid = service.process.pid
        workers = wait_until(
            lambda: len(found := worker_processes(pid)) == 2 and found, 30, "the worker processes"
        )
        service.process.send_signal(signal.SIGKILL)
        service.process.wait()
        wait_until(
            lambda: not any(is_alive(worker) for worker in workers),
            30,
            "orphaned workers to notice their parent is gone",
        )
