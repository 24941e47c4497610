"""Attempts: a poison file (one that kills the process running it) costs only its own attempts;
a failing job is retried up to --max-attempts, then failed with its last error. Real processes."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.conftest import FIXTURES
from tests.faults.conftest import one_set_of_transcripts, temporaries, transcript_files
from tests.media import place
from tests.service import JOB_DEADLINE_S, running_service, service_env
from tests.waiting import wait_until


def test_poison_file_costs_only_its_own_attempts(
    database_url: str, tmp_path: Path, long_speech: Path
) -> None:
    inbox = tmp_path / "inbox"
    poison = place(long_speech, inbox, "poison.wav")
    good = [place(FIXTURES / name, inbox) for name in ("speech_a.wav", "speech_b.flac")]
    with running_service(
        "--database-url", database_url, "--inbox", inbox, "--workers", "2",
        "--max-attempts", "2", cwd=tmp_path, env=service_env(),
    ) as service:  # fmt: skip
        poison_id = service.submit(poison)
        good_ids = [service.submit(source) for source in good]
        for attempt in (1, 2):  # each time it runs, the process running it dies (kill -9)
            running = wait_until(
                lambda attempt=attempt: (
                    (job := service.job(poison_id))["status"] == "running"
                    and job["attempts"] == attempt
                    and job["worker_id"]
                    and job
                ),
                JOB_DEADLINE_S,
                f"attempt {attempt} of the poison file to run",
            )
            os.kill(int(running["worker_id"].rsplit(":", 1)[1]), signal.SIGKILL)
        failed = service.wait_status(poison_id, "failed", "done")
        assert failed["status"] == "failed" and failed["attempts"] == 2
        assert failed["error"] == "worker process died (exit code -9)"
        for job_id in good_ids:
            assert service.wait_status(job_id, "done", "failed")["status"] == "done"
        later = service.submit(place(FIXTURES / "speech_c.ogg", inbox))
        assert service.wait_status(later, "done", "failed")["status"] == "done"
        assert (
            "whisper_transcriber_worker_restarts_total 2.0" in service.client.get("/metrics").text
        )
        assert service.stop() == 0
    assert all(one_set_of_transcripts(source) for source in good)
    assert transcript_files(poison) == []
    assert not temporaries(inbox)
