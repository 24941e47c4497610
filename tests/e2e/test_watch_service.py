"""Inboxes through the real `serve`: config-file inboxes, restarts, and start-up errors."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.cli import COMMAND, clean_env, run_cli
from tests.helpers.fake_engine import fake_engine_env
from tests.helpers.media import FIXTURES
from tests.helpers.service import running_service
from tests.helpers.waiting import wait_until
from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.values import JobQuery, JobRecord

JOB_TIMEOUT_S = 120


def test_inboxes_from_the_config_file_and_files_added_while_stopped(
    database_url: str, tmp_path: Path
) -> None:
    talks, nas, outbox = tmp_path / "talks", tmp_path / "nas", tmp_path / "transcripts"
    for folder in (talks / "2026", nas):
        folder.mkdir(parents=True)
    config = tmp_path / "settings.toml"
    config.write_text(
        f'database_url = "{database_url}"\n'
        'formats = ["txt"]\n'
        "settle_s = 0.5\n"
        f'[[inboxes]]\npath = "{talks}"\noutbox = "{outbox}"\nformats = ["txt", "srt"]\n'
        f'[[inboxes]]\npath = "{nas}"\nname = "nas"\nobserver = "polling"\n'
        'poll_interval_s = 0.5\non_success = "move"\n'
    )
    env = fake_engine_env(clean_env())  # the inboxes are under test, not the model
    store = JobStore(make_engine(database_url))

    def all_done(count: int) -> list[JobRecord]:
        jobs = store.list_jobs(JobQuery(), 100)
        ready = len(jobs) == count and all(job.status.is_final for job in jobs)
        return jobs if ready else []

    with running_service("--config", config, cwd=tmp_path, env=env) as service:
        shutil.copy(FIXTURES / "speech_a.wav", talks / "2026" / "a.wav")
        shutil.copy(FIXTURES / "speech_b.flac", nas / "b.flac")
        jobs = wait_until(lambda: all_done(2), JOB_TIMEOUT_S, "both inbox files to be done")
        assert service.stop() == 0
    assert all(job.status is JobStatus.DONE for job in jobs), [job.error for job in jobs]
    assert sorted(job.origin for job in jobs) == ["inbox:nas", "inbox:talks"]
    assert sorted(p.name for p in (outbox / "2026").iterdir()) == ["a.srt", "a.txt"]
    assert sorted(p.name for p in (nas / "done").iterdir()) == ["b.flac", "b.txt"]
    assert list(nas.glob("*.flac")) == []

    shutil.copy(FIXTURES / "speech_c.ogg", talks / "c.ogg")  # while the service is down
    with running_service("--config", config, cwd=tmp_path, env=env) as service:
        jobs = wait_until(lambda: all_done(3), JOB_TIMEOUT_S, "the file added while down")
        assert service.stop() == 0
    [newest] = [job for job in jobs if job.source_path.endswith("c.ogg")]
    assert newest.status is JobStatus.DONE, newest.error
    assert (outbox / "c.txt").read_text().strip()
    # a.wav, still in its inbox and unchanged, was not done again.
    assert len(store.list_jobs(JobQuery(), 100)) == 3
    store.engine.dispose()


def test_the_periodic_rescan_finds_what_the_observer_missed(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A NAS that reports nothing: a poller that looks once an hour stands in for dropped events."""
    inbox = tmp_path / "nas"
    inbox.mkdir()
    env = clean_env(WHISPER_TRANSCRIBER_RESCAN_INTERVAL_S="1", WHISPER_TRANSCRIBER_SETTLE_S="0.5")
    store = JobStore(make_engine(sqlite_url))
    with running_service(
        "--database-url", sqlite_url, "--inbox", f"{inbox}?observer=polling&poll_interval_s=3600",
        "--formats", "txt", cwd=tmp_path, env=env,
    ) as service:  # fmt: skip
        shutil.copy(FIXTURES / "speech_c.ogg", inbox / "missed.ogg")
        [job] = wait_until(
            lambda: [j for j in store.list_jobs(JobQuery(), 100) if j.status.is_final],
            JOB_TIMEOUT_S,
            "the rescan to find the file and its job to finish",
        )
        assert service.stop() == 0
    assert job.status is JobStatus.DONE, job.error
    assert (inbox / "missed.txt").read_text().strip()
    store.engine.dispose()


@pytest.mark.parametrize("problem", ["missing", "a file", "unreadable"])
def test_a_bad_inbox_stops_start_up_with_a_clear_error(tmp_path: Path, problem: str) -> None:
    inbox = tmp_path / "inbox"
    if problem == "a file":
        inbox.write_text("not a folder")
    elif problem == "unreadable":
        inbox.mkdir(mode=0o000)
    args = ["serve", "--inbox", str(inbox), "--database-url", f"sqlite:///{tmp_path / 'j.db'}"]
    if problem == "unreadable":
        # Root reads anything: drop every capability so that the folder's mode counts.
        command = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--", COMMAND, *args]
        result = subprocess.run(
            command, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120
        )
        inbox.chmod(0o755)
    else:
        result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    reason = {
        "missing": "is not an existing folder",
        "a file": "is not an existing folder",
        "unreadable": "is not readable: Permission denied",
    }[problem]
    assert result.stderr.strip() == (
        f"error: setting inboxes (--inbox or WHISPER_TRANSCRIBER_INBOXES): inbox {inbox} {reason}"
    )
