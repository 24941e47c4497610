"""Logs: readable text, or one JSON object per line; every line about a job carries its id."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.media import FIXTURES, place
from tests.helpers.service import running_service, service_env
from whisper_transcriber.service.logs import configure_logging
from whisper_transcriber.worker.job_in_hand import about_job


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_carry_the_job_id(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    log = logging.getLogger("worker.test")
    log.info("job %s: queued %s", 41, "/inbox/a.wav")
    with about_job(42):
        log.info("Processing audio with duration 00:04.205")
    log.warning("watching %s", "/inbox")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line.get("job_id") for line in lines] == [41, 42, None]
    assert lines[0]["message"] == "job 41: queued /inbox/a.wav"
    assert {"time", "level", "logger", "process"} <= set(lines[0])
    assert lines[2]["level"] == "WARNING" and "job_id" not in lines[2]


@pytest.mark.usefixtures("restore_logging")
def test_text_lines_stay_readable(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("WARNING", "text")
    logging.getLogger("worker.test").info("not shown")
    logging.getLogger("worker.test").warning("job %s: heartbeat failed", 7)
    [line] = capsys.readouterr().err.splitlines()
    assert line.endswith(" WARNING [worker.test] job 7: heartbeat failed")


def test_service_logs_json_from_every_process(sqlite_url: str, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    source = place(FIXTURES / "speech_a.wav", inbox)
    with running_service(
        "--database-url", sqlite_url, "--inbox", inbox, "--workers", "1", "--log-format", "json",
        cwd=tmp_path, env=service_env(),
    ) as service:  # fmt: skip
        job_id = service.submit(source)
        assert service.wait_status(job_id, "done", "failed")["status"] == "done"
        assert service.stop() == 0
    lines = [json.loads(line) for line in service.log.read_text().splitlines()]
    about = [line for line in lines if line.get("job_id") == job_id]
    messages = " | ".join(line["message"] for line in about)
    assert f"job {job_id}: attempt 1 on {source}" in messages
    assert "Processing audio with duration" in messages  # faster-whisper's own, in the worker
    assert f"job {job_id}: done" in messages
    assert {line["process"] for line in about} >= {"worker-1"}
    assert any(line["logger"].startswith("uvicorn") for line in lines)
