"""A long file split across a real service's workers (the real model): a worker killed (kill -9)
while it holds a piece costs that piece, which is tried again, not the file; the file's job
reports progress over its pieces and the API lists the file alone."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.helpers.media import long_recording
from tests.helpers.service import JOB_DEADLINE_S, running_service, service_env
from tests.helpers.waiting import wait_until
from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.transcript import Transcript
from whisper_transcriber.db.values import JobRecord
from whisper_transcriber.worker.split_files import split_spans


def test_a_worker_killed_mid_piece_costs_the_piece_not_the_file(
    database_url: str, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    source = long_recording(media / "talk.wav", repeats=45)  # 189 s: pieces of 30-60 s
    env = service_env(SPLIT_AFTER_S="60", SPLIT_PIECE_S="60", RETRY_DELAY_S="0.2")
    engine = make_engine(database_url)
    store = JobStore(engine)
    try:
        with running_service(
            "--database-url", database_url, "--inbox", media, "--workers", "2",
            cwd=tmp_path, env=env,
        ) as service:  # fmt: skip
            service.wait_for_workers(2)
            job_id = service.submit(source, formats=["txt", "srt"])

            def frozen_piece_holder() -> tuple[JobRecord, int] | None:
                """A piece running on the worker that did not split the file, its worker
                stopped (SIGSTOP) while it still holds it: it cannot finish before the kill."""
                parent = store.get(job_id)
                for piece in store.pieces(job_id):
                    if piece.status is not JobStatus.RUNNING or piece.worker_id in (
                        None,
                        parent.worker_id,
                    ):
                        continue
                    pid = int(piece.worker_id.rsplit(":", 1)[1])
                    os.kill(pid, signal.SIGSTOP)
                    now = store.get(piece.id)
                    if now.status is JobStatus.RUNNING and now.attempts == piece.attempts:
                        return piece, pid
                    os.kill(pid, signal.SIGCONT)  # it finished as we looked: another one
                return None

            piece, pid = wait_until(
                frozen_piece_holder, JOB_DEADLINE_S, "a piece on the other worker"
            )
            os.kill(pid, signal.SIGKILL)
            assert [j["id"] for j in service.client.get("/jobs").json()["items"]] == [job_id]
            done = service.wait_status(job_id, "done", "failed")
            assert (done["status"], done["attempts"]) == ("done", 1), done
            assert store.pieces(job_id) == []
            assert service.stop() == 0
    finally:
        engine.dispose()
    log = service.log.read_text()
    assert "died with exit code -9" in log
    assert f"job {piece.id}: attempt 1 failed: worker process died" in log
    assert f"job {job_id}: 189 s of audio split into" in log
    # Every piece, the retried one included, has its words in the joined transcript.
    transcript = stored_transcript(database_url, job_id)
    for start, end in split_spans(str(source), 60.0):
        within = [s for s in transcript.segments if start <= s.start * 16000 < end]
        assert within and "museum" in " ".join(s.text for s in within).lower(), (start, end)
    srt = source.with_suffix(".srt").read_text()
    last_cue = srt.strip().split("\n\n")[-1].splitlines()[1]
    assert last_cue >= "00:02:55", last_cue  # cues run on through the last piece


def stored_transcript(database_url: str, job_id: int) -> Transcript:
    engine = make_engine(database_url)
    try:
        transcript = JobStore(engine).transcript(job_id)
    finally:
        engine.dispose()
    assert transcript is not None
    return transcript
