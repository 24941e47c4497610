"""Bounded workers: a worker steps down for a fresh process after its job allowance, or when its
memory is above the ceiling; no job is lost or repeated, and it is no restart. A real service,
its workers on the fake engine (tests/helpers/fake_engine.py): what is tested is their turnover."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.fake_engine import fake_engine_env
from tests.helpers.media import FIXTURES, place
from tests.helpers.outputs import one_set_of_transcripts
from tests.helpers.service import Service, running_service, service_env


def run_batch(service: Service, inbox: Path, count: int) -> list[Path]:
    sources = [place(FIXTURES / "speech_c.ogg", inbox, f"talk-{i}.ogg") for i in range(count)]
    ids = [service.submit(source) for source in sources]
    for job_id in ids:
        job = service.wait_status(job_id, "done", "failed")
        assert job["status"] == "done" and job["attempts"] == 1, job
    return sources


def test_worker_is_recycled_after_its_job_allowance(database_url: str, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with running_service(
        "--database-url", database_url, "--inbox", inbox, "--workers", "1",
        cwd=tmp_path, env=fake_engine_env(service_env(WORKER_MAX_JOBS="2")),
    ) as service:  # fmt: skip
        sources = run_batch(service, inbox, 5)
        metrics = service.client.get("/metrics").text
        assert service.stop() == 0
    assert all(one_set_of_transcripts(source) for source in sources)
    log = service.log.read_text()
    assert log.count("stepping down for a fresh process (2 jobs done)") == 2
    assert log.count(" recycled (#") == 2
    assert log.count(" ready: ") == 3  # the first worker and two fresh ones
    assert "whisper_transcriber_worker_recycles_total 2.0" in metrics
    assert "whisper_transcriber_worker_restarts_total 0.0" in metrics


def test_worker_above_the_memory_ceiling_is_recycled(sqlite_url: str, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with running_service(
        "--database-url", sqlite_url, "--inbox", inbox, "--workers", "1",
        cwd=tmp_path, env=fake_engine_env(service_env(WORKER_MAX_MEMORY_MB="1")),  # all above 1 MiB
    ) as service:  # fmt: skip
        sources = run_batch(service, inbox, 3)
        service.wait_for_workers(4)  # the first worker and a fresh one after each job
        assert service.stop() == 0
    assert all(one_set_of_transcripts(source) for source in sources)
    log = service.log.read_text()
    assert log.count("MiB is above 1 MiB") == 3
    assert log.count(" ready: ") == 4
