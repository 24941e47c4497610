"""One job through the job runner in this process: changed sources (the real engine), and a
cancel mid-run and progress on the way (the fake engine: the runner's part, not the model's, whose
progress and stopping tests/integration/test_long_form.py checks)."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

from tests.helpers.fake_engine import in_process, plan
from tests.helpers.media import FIXTURES
from tests.helpers.waiting import wait_until
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.values import JobOptions
from whisper_transcriber.worker.confinement import Confinement
from whisper_transcriber.worker.engine import Engine
from whisper_transcriber.worker.job_runner import run_job


def test_a_file_changed_since_queued_fails_its_job(
    store: JobStore, engine: Engine, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    source = Path(shutil.copy(FIXTURES / "speech_a.wav", media))
    store.enqueue(source, JobOptions(), "test")
    with source.open("ab") as f:
        f.write(b"\0" * 1024)
    job = store.claim("w1")
    assert job is not None
    run_job(store, engine, job, Confinement.of([tmp_path]))
    failed = store.get(job.id)
    assert failed.status is JobStatus.FAILED
    assert "changed after it was queued" in (failed.error or "")
    assert sorted(p.name for p in media.iterdir()) == ["speech_a.wav"]


def test_cancel_stops_a_running_transcription(store: JobStore, tmp_path: Path) -> None:
    engine = in_process()
    source = plan(tmp_path / "media" / "long.wav", until=tmp_path / "never")
    store.enqueue(source, JobOptions(), "test")
    job = store.claim("w1")
    assert job is not None
    runner = threading.Thread(target=run_job, args=(store, engine, job, Confinement.of([tmp_path])))
    runner.start()
    wait_until(lambda: store.get(job.id).progress > 0, 120, "the job to make progress")
    store.cancel(job.id)
    runner.join(120)
    assert not runner.is_alive()
    assert store.get(job.id).status is JobStatus.CANCELLED
    assert store.transcript(job.id) is None
    assert sorted(os.listdir(tmp_path / "media")) == ["long.wav"]


def test_progress_is_recorded_while_running(store: JobStore, tmp_path: Path) -> None:
    engine = in_process()
    # Long enough that progress outlives the one-second write rate.
    source = plan(tmp_path / "media" / "long.wav", work_s=3)
    store.enqueue(source, JobOptions(formats=("txt",)), "test")
    job = store.claim("w1")
    assert job is not None
    seen: list[float] = []
    runner = threading.Thread(target=run_job, args=(store, engine, job, Confinement.of([tmp_path])))
    runner.start()
    while runner.is_alive():
        progress = store.get(job.id).progress
        if not seen or progress != seen[-1]:
            seen.append(progress)
        runner.join(0.05)
    done = store.get(job.id)
    assert done.status is JobStatus.DONE and done.progress == 1.0
    assert any(0 < value < 1 for value in seen), seen
    assert seen == sorted(seen)
