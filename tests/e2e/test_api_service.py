"""The jobs API against a real `serve`: cancelling a job while its worker transcribes it (with
the fake engine, whose job works until it is stopped: the cancel is under test, not the model)."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

from tests.helpers.cli import clean_env
from tests.helpers.fake_engine import fake_engine_env, plan
from tests.helpers.media import FIXTURES
from tests.helpers.service import running_service
from tests.helpers.waiting import wait_until

JOB_TIMEOUT_S = 120


def test_cancelling_a_running_job_stops_its_worker(database_url: str, tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    long = plan(media / "long.wav", until=tmp_path / "never")
    short = Path(shutil.copy(FIXTURES / "speech_c.ogg", media / "short.ogg"))
    with running_service(
        "--database-url", database_url, "--inbox", media, "--workers", "1", "--formats", "txt",
        cwd=tmp_path, env=fake_engine_env(clean_env()),
    ) as service:  # fmt: skip
        client = service.client
        wait_until(lambda: client.get("/ready").status_code == 200, 60, "the service to be ready")
        assert client.get("/ready").json() == {"ready": True, "problems": []}
        job_id = client.post("/transcribe", json={"path": str(long)}).json()["id"]

        def progressing() -> bool:
            job = client.get(f"/jobs/{job_id}").json()
            return job["status"] == "running" and job["progress"] > 0

        wait_until(progressing, JOB_TIMEOUT_S, "the long job to be under way")
        cancelled = client.delete(f"/jobs/{job_id}")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        # The only worker must drop the long job to take the next one.
        short_id = client.post("/transcribe", json={"path": str(short)}).json()["id"]
        wait_until(
            lambda: client.get(f"/jobs/{short_id}").json()["status"] == "done",
            JOB_TIMEOUT_S,
            "the next job, which needs the worker back",
        )
        job = client.get(f"/jobs/{job_id}").json()
        assert job["status"] == "cancelled" and job["outputs"] == []
        metrics = client.get("/metrics").text
        assert 'whisper_transcriber_jobs{status="cancelled"} 1.0' in metrics
        assert 'whisper_transcriber_jobs{status="done"} 1.0' in metrics
        assert 'whisper_transcriber_worker_state{state="down"} 0.0' in metrics
        assert service.stop() == 0
    assert sorted(p.name for p in media.iterdir()) == ["long.wav", "short.ogg", "short.txt"]
    # Stopped while transcribing, not only refused at the end: at the next segment, or killed
    # when that segment takes longer than the supervisor's grace (a 30 s window on a slow CPU).
    log = service.log.read_text()
    stopped = f"job {job_id}: attempt 1 was cancelled or taken over; stopped mid-way" in log
    killed = f"job {job_id}: attempt 1 was cancelled; worker-1 " in log
    assert stopped or killed, log


def test_an_open_event_stream_does_not_hold_up_shutdown(sqlite_url: str, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with (
        running_service("--database-url", sqlite_url, "--inbox", inbox, cwd=tmp_path) as service,
        httpx.Client(base_url=service.base_url, timeout=None) as listener,
        listener.stream("GET", "/events") as response,
    ):
        assert response.status_code == 200
        assert next(response.iter_lines()).startswith(": subscribed")
        assert service.stop() == 0  # SIGTERM, with the stream still open
