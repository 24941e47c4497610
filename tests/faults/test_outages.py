"""Outages: PostgreSQL restarted mid-batch, a full output folder, a read-only output folder. The
service waits or fails only the affected jobs, says so, and stays up; no job is lost. The restart
is of a PostgreSQL server of the test's own (tests/helpers/postgres.py), never the shared one."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.helpers.fake_engine import fake_engine_env, plan
from tests.helpers.media import FIXTURES, place
from tests.helpers.outputs import one_set_of_transcripts, temporaries, transcript_files
from tests.helpers.postgres import PrivateServer
from tests.helpers.service import (
    JOB_DEADLINE_S,
    Service,
    running_service,
    service_env,
    unprivileged,
)
from tests.helpers.waiting import wait_until
from tests.helpers.webhook_receiver import Receiver
from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.values import JobQuery, JobRecord
from whisper_transcriber.service.webhooks.signing import generate_secret

SHORT = ("speech_a.wav", "speech_b.flac", "speech_c.ogg")


def attempt_times(log: str, job_id: int) -> list[datetime]:
    """When each attempt of the job started, from the service log's timestamps."""
    return [
        datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
        for line in log.splitlines()
        if f" job {job_id}: attempt " in line and " on " in line
    ]


def readiness(service: Service) -> tuple[int, str]:
    try:
        response = service.client.get("/ready")
    except httpx.TransportError as exc:
        return 0, str(exc)
    return response.status_code, response.text


@pytest.mark.postgres
def test_postgres_restart_mid_batch_loses_nothing(
    private_postgres: PrivateServer, tmp_path: Path
) -> None:
    """The outage is about the queue, not the model: the fake engine runs the jobs, and the long
    one finishes while the database is away, so that its result waits for it. A webhook hears
    every job's end once, the outage notwithstanding."""
    postgres_url = private_postgres.create_database("outage")
    secret = generate_secret()
    receiver = Receiver(secret)
    receiver.start()
    hooks = {"ends": {"url": receiver.url, "secret": secret, "events": ["done"]}}
    store = JobStore(make_engine(postgres_url))
    inbox = tmp_path / "inbox"
    finish_long = tmp_path / "finish-long"
    long = plan(inbox / "long.wav", until=finish_long)
    sources = [long] + [
        place(FIXTURES / name, inbox, f"{i:02d}-{name}") for i in range(3) for name in SHORT
    ]
    with running_service(
        "--database-url", postgres_url, "--inbox", inbox, "--workers", "2",
        cwd=tmp_path, env=fake_engine_env(service_env(
            SETTLE_S="0.5", WEBHOOKS=json.dumps(hooks), WEBHOOK_BACKOFF_S="0.5"
        )),
    ) as service:  # fmt: skip
        wait_until(
            lambda: (
                (job := {j.source_path: j for j in store.list_jobs(JobQuery(), 100)}.get(str(long)))
                and job.status.value == "running"
            ),
            JOB_DEADLINE_S,
            "the long job to run",
        )
        private_postgres.stop()
        try:
            wait_until(
                lambda: readiness(service)[0] == 503, 60, "/ready to say the database is away"
            )
            assert "database unreachable" in readiness(service)[1]
            assert service.client.get("/health").status_code == 200
            # A file that arrives during the outage waits for the database.
            arrived = place(FIXTURES / "speech_a.wav", inbox, "during-outage.wav")
            sources.append(arrived)
            wait_until(
                lambda: f"could not enqueue {arrived}" in service.log.read_text(),
                60,
                "the watcher to find the database away",
            )
            finish_long.touch()  # the long job ends while the database is away
        finally:
            private_postgres.start()
        wait_until(lambda: readiness(service)[0] == 200, 60, "/ready to recover")
        wait_until(
            lambda: (
                Counter(job.status.value for job in store.list_jobs(JobQuery(), 100))
                == Counter(done=len(sources))
            ),
            JOB_DEADLINE_S,
            f"all {len(sources)} files to be done",
        )
        wait_until(lambda: len(receiver.events()) >= len(sources), 60, "every job's end delivered")
        assert service.stop() == 0
    receiver.stop()
    ends = receiver.all()
    assert all(r.verified for r in ends)
    assert len({r.message_id for r in ends}) == len(sources)  # each job's end, once
    assert sorted(r.payload["data"]["source_path"] for r in ends) == sorted(map(str, sources))
    jobs = store.list_jobs(JobQuery(), 100)
    assert sorted(job.source_path for job in jobs) == sorted(str(s) for s in sources)
    assert all(one_set_of_transcripts(source) for source in sources)
    assert not temporaries(inbox)
    store.engine.dispose()


@pytest.fixture
def full_folder(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB file system (tmpfs) filled to the last byte; mounting needs root."""
    if os.geteuid() != 0:  # CI and these machines run as root; say so rather than skip
        pytest.fail("mounting a small file system (tmpfs) needs root", pytrace=False)
    folder = tmp_path / "full"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", folder], check=True)
    try:
        with (
            pytest.raises(OSError, match="No space left"),
            (folder / "filler").open("wb") as filler,
        ):
            filler.write(bytes(2 * 2**20))
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", folder], check=True)


def test_full_output_folder_fails_its_jobs_and_the_service_stays_up(
    database_url: str, job_store: JobStore, tmp_path: Path, full_folder: Path
) -> None:
    to_full = tmp_path / "to-full"
    blocked = place(FIXTURES / "speech_a.wav", to_full)
    inbox = tmp_path / "inbox"
    inbox.mkdir()

    def job_of(source: Path) -> JobRecord | None:
        job = next(
            (j for j in job_store.list_jobs(JobQuery(), 100) if j.source_path == str(source)), None
        )
        return job if job is not None and job.status.is_final else None

    with running_service(
        "--database-url", database_url, "--inbox", f"{to_full}?outbox={full_folder}",
        "--inbox", inbox, "--workers", "1", "--max-attempts", "1",
        cwd=tmp_path, env=service_env(SETTLE_S="0.5"),
    ) as service:  # fmt: skip
        failed = wait_until(lambda: job_of(blocked), JOB_DEADLINE_S, "the blocked job to end")
        assert failed.status.value == "failed"
        assert failed.error == f"cannot write transcripts in {full_folder}: No space left on device"
        assert not temporaries(full_folder)
        # The service goes on with other jobs; once there is room, a retry succeeds.
        fine = place(FIXTURES / "speech_b.flac", inbox)
        done = wait_until(lambda: job_of(fine), JOB_DEADLINE_S, "the other inbox's job to end")
        assert done.status.value == "done"
        (full_folder / "filler").unlink()
        assert service.client.post(f"/jobs/{failed.id}/retry").status_code == 200
        assert service.wait_status(failed.id, "done", "failed")["status"] == "done"
        assert service.stop() == 0
    assert one_set_of_transcripts(blocked, full_folder)
    assert one_set_of_transcripts(fine)


def test_read_only_output_folder_is_retried_then_fails_with_its_reason(
    database_url: str, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    source = place(FIXTURES / "speech_c.ogg", inbox)
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    with running_service(
        "--database-url", database_url, "--inbox", inbox, "--workers", "1",
        "--max-attempts", "3", "--output-dir", outbox,
        cwd=tmp_path, env=service_env(RETRY_DELAY_S="0.5"), prefix=unprivileged(),
    ) as service:  # fmt: skip
        # Read-only once the service runs (a remount): at start it would refuse to begin.
        outbox.chmod(0o555)
        job_id = service.submit(source)
        failed = service.wait_status(job_id, "failed", "done")
        assert failed["status"] == "failed" and failed["attempts"] == 3
        assert failed["error"] == f"cannot write transcripts in {outbox}: Permission denied"
        outbox.chmod(0o755)
        assert service.client.post(f"/jobs/{job_id}/retry").status_code == 200
        assert service.wait_status(job_id, "done", "failed")["status"] == "done"
        assert service.stop() == 0
    # Exponential backoff: the third attempt waited at least twice the first retry delay.
    started = attempt_times(service.log.read_text(), job_id)
    assert len(started) == 4  # three attempts, then the retry asked for above
    assert started[1] - started[0] >= timedelta(seconds=0.5)
    assert started[2] - started[1] >= timedelta(seconds=1.0)
    assert one_set_of_transcripts(source, outbox)
    assert transcript_files(source) == []
