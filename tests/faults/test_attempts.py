"""Attempts: a poison file (one that kills the process running it) costs only its own attempts;
a failing job is retried up to --max-attempts, then failed with its last error. Real processes,
on the fake engine (tests/helpers/fake_engine.py): the poison file's plan is a SIGKILL of the
worker that runs it, as a decoder that crashes the process would be."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.fake_engine import fake_engine_env, plan
from tests.helpers.media import FIXTURES, place
from tests.helpers.outputs import one_set_of_transcripts, temporaries, transcript_files
from tests.helpers.service import running_service, service_env


def test_poison_file_costs_only_its_own_attempts(database_url: str, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    poison = plan(inbox / "poison.wav", crash="kill")  # each time it runs, its process dies
    good = [place(FIXTURES / name, inbox) for name in ("speech_a.wav", "speech_b.flac")]
    with running_service(
        "--database-url", database_url, "--inbox", inbox, "--workers", "2",
        "--max-attempts", "2", cwd=tmp_path, env=fake_engine_env(service_env()),
    ) as service:  # fmt: skip
        poison_id = service.submit(poison)
        good_ids = [service.submit(source) for source in good]
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
