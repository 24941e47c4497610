"""Bad input fails its own job with a readable reason; odd but valid input is transcribed; the
service stays up and later files are still done. A real service, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import wave
from pathlib import Path

from tests.helpers.jobs import jobs_by_path
from tests.helpers.media import FIXTURES, place, silence
from tests.helpers.outputs import one_set_of_transcripts, temporaries, transcript_files
from tests.helpers.service import JOB_DEADLINE_S, running_service, service_env, unprivileged
from tests.helpers.waiting import wait_until
from whisper_transcriber.db.job_store import JobStore

LONG_SILENCE_S = 30 * 60


def bad_inputs(inbox: Path) -> dict[Path, str]:
    """Each bad file, with the reason its job must give."""
    inbox.mkdir(parents=True, exist_ok=True)
    zero = inbox / "zero.wav"
    zero.touch()
    noise = inbox / "noise.wav"
    noise.write_bytes(random.Random(7).randbytes(50_000))
    flac = (FIXTURES / "speech_b.flac").read_bytes()
    truncated = inbox / "truncated.flac"
    truncated.write_bytes(flac[: len(flac) * 2 // 5])
    text = inbox / "notes.mp3"
    text.write_text("these are meeting notes, not audio\n" * 40)
    header_only = inbox / "header-only.wav"
    with wave.open(str(header_only), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
    locked = place(FIXTURES / "speech_a.wav", inbox, "locked.wav")
    locked.chmod(0)
    return {
        zero: f"empty file (0 bytes): {zero}",
        noise: f"cannot decode {noise}: Invalid data found when processing input",
        truncated: f"truncated file: {truncated} declares 4.3 s of audio but only",
        text: f"cannot decode {text}: Invalid data found when processing input",
        header_only: f"no audio in {header_only}: the file has no samples",
        locked: f"permission denied: {locked}",
    }


def good_inputs(inbox: Path) -> dict[Path, str]:
    """Odd but valid files, with a word their transcript must hold ("" for silence)."""
    return {
        silence(inbox / "silence.wav", 20): "",
        silence(inbox / "half an hour of nothing.wav", LONG_SILENCE_S): "",
        place(FIXTURES / "speech_a.wav", inbox, "museum tour 2024 .wav"): "museum",
        place(FIXTURES / "speech_b.flac", inbox, "Bericht für Ünal \u2013 報告.flac"): "report",
        place(FIXTURES / "speech_c.ogg", inbox, "first line\nsecond line.ogg"): "elephant",
    }


def test_bad_files_fail_alone_and_odd_files_succeed(
    database_url: str, job_store: JobStore, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    bad = bad_inputs(inbox)
    good = good_inputs(inbox)
    expected = len(bad) + len(good)
    with running_service(
        "--database-url", database_url, "--inbox", inbox, "--workers", "1",
        cwd=tmp_path, env=service_env(SETTLE_S="0.5"), prefix=unprivileged(),
    ) as service:  # fmt: skip
        jobs = wait_until(
            lambda: (
                len(found := jobs_by_path(job_store)) == expected
                and all(job.status.is_final for job in found.values())
                and found
            ),
            JOB_DEADLINE_S,
            f"{expected} jobs to end",
        )
        for path, reason in bad.items():
            job = jobs[str(path)]
            assert job.status.value == "failed", job
            assert job.error is not None and job.error.startswith(reason), job.error
            assert job.attempts == 1  # the same bytes would fail the same way: no retries
            assert transcript_files(path) == []
        for path, word in good.items():
            job = jobs[str(path)]
            assert job.status.value == "done", job
            assert one_set_of_transcripts(path), path
            text = path.with_suffix(".txt").read_text().strip()
            assert word in text.lower() if word else text == "", (path, text)
        silent = service.client.get(f"/jobs/{jobs[str(inbox / 'half an hour of nothing.wav')].id}")
        assert silent.json()["duration"] == LONG_SILENCE_S

        # Still up, still working, nothing restarted.
        later = place(FIXTURES / "speech_a.wav", inbox, "later.wav")
        later_job = wait_until(
            lambda: (
                (job := jobs_by_path(job_store).get(str(later))) and job.status.is_final and job
            ),
            JOB_DEADLINE_S,
            "the later file's job to end",
        )
        assert later_job.status.value == "done"
        assert (
            "whisper_transcriber_worker_restarts_total 0.0" in service.client.get("/metrics").text
        )
        assert service.stop() == 0
    assert not temporaries(inbox)
    assert "Traceback" not in service.log.read_text()
