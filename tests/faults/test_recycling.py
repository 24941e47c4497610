"""Bounded workers: a worker steps down for a fresh process after its job allowance, or when its
memory is above the ceiling; no job is lost or repeated, and it is no restart. A real service."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import FIXTURES
from tests.faults.conftest import one_set_of_transcripts
from tests.media import place
from tests.service import Service, running_service, service_env
from whisper_transcriber.worker.process import Recycling


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
        cwd=tmp_path, env=service_env(WORKER_MAX_JOBS="2"),
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
        cwd=tmp_path, env=service_env(WORKER_MAX_MEMORY_MB="1"),  # any worker is above 1 MiB
    ) as service:  # fmt: skip
        sources = run_batch(service, inbox, 3)
        service.wait_for_workers(4)  # the first worker and a fresh one after each job
        assert service.stop() == 0
    assert all(one_set_of_transcripts(source) for source in sources)
    log = service.log.read_text()
    assert log.count("MiB is above 1 MiB") == 3
    assert log.count(" ready: ") == 4


def test_recycling_reasons() -> None:
    rules = Recycling(max_jobs=3, max_memory_bytes=100 * 2**20)
    assert rules.reason(2, 50 * 2**20) is None
    assert rules.reason(3, 50 * 2**20) == "3 jobs done"
    assert rules.reason(1, 200 * 2**20) == "memory 200 MiB is above 100 MiB"
    assert Recycling().reason(10**6, 10**12) is None  # unset: never
