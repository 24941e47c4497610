"""The retention sweep on a real SQLite file and the real PostgreSQL, with real upload folders:
what goes, what stays because a job needs it, links that are not followed, and old jobs."""

from __future__ import annotations

import logging
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from whisper_transcriber.api.app import create_app
from whisper_transcriber.api.app_context import ApiContext
from whisper_transcriber.db.errors import InvalidTransition, JobNotFound
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.retention import Retention
from whisper_transcriber.db.transcript import Segment, Transcript
from whisper_transcriber.db.values import JobOptions, JobRecord
from whisper_transcriber.db.worker_registry import WorkerRegistry
from whisper_transcriber.service.retention import (
    SWEEP_INTERVAL_S,
    SweepResult,
    sweep,
    sweep_interval_s,
)
from whisper_transcriber.service.run_again import RunAgain
from whisper_transcriber.service.runner import _scheduler
from whisper_transcriber.service.settings import Role, Settings

DAY_S = 86400.0
OPTIONS = JobOptions(formats=("txt",))
AUDIO = b"RIFF" + b"\0" * 996  # what the sweep measures, not what it decodes
TRANSCRIPT = Transcript(
    language="en",
    language_probability=0.99,
    duration=2.0,
    segments=(Segment(id=1, start=0.0, end=2.0, text=" Hello marmalade."),),
)


class Clock:
    """The store's now, moved by the test; it starts at the real now because folders that no
    job holds are judged by their real modification times."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def jobs(db_engine: Engine, clock: Clock) -> JobStore:
    return JobStore(db_engine, clock=clock)


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    folder = tmp_path / "uploads"
    folder.mkdir()
    return folder


def upload(uploads: Path, name: str = "talk.wav") -> Path:
    """A file as api/uploads.py stores it: in a folder of its own."""
    folder = uploads / uuid.uuid4().hex
    folder.mkdir()
    path = folder / name
    path.write_bytes(AUDIO)
    return path


def submit(
    store: JobStore, path: Path, options: JobOptions = OPTIONS, origin: str = "upload"
) -> JobRecord:
    job, created = store.enqueue(path, options, origin)
    assert created
    return job


def finish(store: JobStore, job: JobRecord, status: JobStatus = JobStatus.DONE) -> JobRecord:
    """Claim the job and end it as given; a done one writes its transcript beside its source."""
    claimed = store.claim("worker-1")
    assert claimed is not None and claimed.id == job.id
    if status is JobStatus.CANCELLED:
        return store.cancel(job.id)
    if status is JobStatus.FAILED:
        return store.fail(job.id, claimed.attempts, "cannot decode", retryable=False)

    def publish() -> list[Path]:
        output = Path(job.source_path).with_suffix(".txt")
        output.write_text(TRANSCRIPT.text + "\n")
        return [output]

    return store.complete(job.id, claimed.attempts, TRANSCRIPT, publish)


def run(
    store: JobStore, uploads: Path | None, upload_s: float = DAY_S, jobs_s: float = 0.0
) -> SweepResult:
    return sweep(store, uploads, upload_s, jobs_s)


def test_an_ended_upload_past_its_retention_goes_and_its_transcript_stays(
    jobs: JobStore, uploads: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    done = finish(jobs, submit(jobs, upload(uploads)))
    failed = finish(jobs, submit(jobs, upload(uploads, "bad.mp3")), JobStatus.FAILED)
    cancelled = finish(jobs, submit(jobs, upload(uploads, "gone.ogg")), JobStatus.CANCELLED)
    assert Path(done.outputs[0]).is_file()
    clock.advance(DAY_S + 1)

    with caplog.at_level(logging.INFO, logger="whisper_transcriber.service.retention"):
        result = run(jobs, uploads)

    assert list(uploads.iterdir()) == []
    assert (result.folders, result.files, result.bytes) == (3, 4, 3 * len(AUDIO) + 17)
    assert result.jobs_marked == 3 and result.kept == 0 and result.errors == 0
    for job in (done, failed, cancelled):
        assert jobs.get(job.id).source_removed_at == clock.now
    # The transcript is the database's: readable and searchable after the files went.
    assert jobs.transcript(done.id) == TRANSCRIPT
    assert [hit.job_id for hit in jobs.search("marmalade")] == [done.id]
    assert jobs.get(done.id).outputs == done.outputs  # the record of what was written
    [line] = [
        r.getMessage() for r in caplog.records if r.name == "whisper_transcriber.service.retention"
    ]
    assert "removed 3 upload folder(s), 4 file(s), 3017 bytes (3 job(s) marked" in line

    again = run(jobs, uploads)  # nothing left to do: no second mark, no line
    assert again == SweepResult()
    with pytest.raises(InvalidTransition, match="removed by the retention"):
        jobs.retry(failed.id)


def test_queued_and_running_jobs_keep_their_files_however_old(
    jobs: JobStore, uploads: Path, clock: Clock
) -> None:
    running = submit(jobs, upload(uploads))
    assert jobs.claim("worker-1") is not None
    queued = submit(jobs, upload(uploads))
    clock.advance(30 * DAY_S)

    result = run(jobs, uploads)

    assert Path(running.source_path).is_file() and Path(queued.source_path).is_file()
    assert result.folders == 0
    assert jobs.get(running.id).source_removed_at is None
    assert jobs.get(queued.id).source_removed_at is None


def test_a_file_shared_with_a_queued_job_stays_until_that_job_ends_too(
    jobs: JobStore, uploads: Path, clock: Clock
) -> None:
    path = upload(uploads)
    first = finish(jobs, submit(jobs, path))
    clock.advance(2 * DAY_S)
    second = submit(jobs, path, JobOptions(formats=("srt",)))  # another job of the same file

    result = run(jobs, uploads)

    assert path.is_file() and result.kept == 1 and result.folders == 0
    assert jobs.get(first.id).source_removed_at is None
    assert jobs.retry(finish(jobs, second, JobStatus.FAILED).id).status is JobStatus.QUEUED

    finish(jobs, jobs.get(second.id), JobStatus.FAILED)
    clock.advance(DAY_S + 1)
    result = run(jobs, uploads)
    assert not path.parent.exists() and result.folders == 1 and result.jobs_marked == 2


def test_a_job_inside_its_retention_keeps_its_file(
    jobs: JobStore, uploads: Path, clock: Clock
) -> None:
    path = upload(uploads)
    finish(jobs, submit(jobs, path))
    clock.advance(DAY_S - 60)
    assert run(jobs, uploads).folders == 0
    assert path.is_file()
    clock.advance(61)
    assert run(jobs, uploads).folders == 1
    assert not path.parent.exists()


def test_a_rerun_that_ended_recently_keeps_the_file(
    jobs: JobStore, uploads: Path, clock: Clock
) -> None:
    path = upload(uploads)
    old = finish(jobs, submit(jobs, path))
    clock.advance(2 * DAY_S)
    recent = finish(jobs, submit(jobs, path, JobOptions(formats=("vtt",))))

    result = run(jobs, uploads)

    assert path.is_file() and result.kept == 1
    assert jobs.get(old.id).source_removed_at is None
    assert jobs.get(recent.id).source_removed_at is None


def test_a_job_recorded_between_the_mark_and_the_removal_keeps_the_file(
    jobs: JobStore, uploads: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the re-check closes: a new job of the file (a forced rerun) committed after the
    mark and before the folder went."""
    path = upload(uploads)
    ended = finish(jobs, submit(jobs, path))
    clock.advance(DAY_S + 1)
    mark = Retention.mark_removed
    rerun: list[JobRecord] = []

    def mark_then_rerun(self: Retention, folder: Path, ended_before: datetime) -> list[int] | None:
        marked = mark(self, folder, ended_before)
        rerun.append(submit(jobs, path, JobOptions(formats=("tsv",))))
        return marked

    monkeypatch.setattr(Retention, "mark_removed", mark_then_rerun)
    result = run(jobs, uploads)

    assert path.is_file() and result.kept == 1 and result.folders == 0
    assert jobs.get(ended.id).source_removed_at is None  # the mark was undone
    assert jobs.get(rerun[0].id).status is JobStatus.QUEUED


def test_links_in_the_uploads_folder_are_never_followed(
    jobs: JobStore, uploads: Path, clock: Clock, tmp_path: Path
) -> None:
    private = tmp_path / "private"
    (private / "a").mkdir(parents=True)
    (private / "b").mkdir()
    for folder in (private / "a", private / "b", private):
        (folder / "talk.wav").write_bytes(AUDIO)
        (folder / "secret.txt").write_text("keep me")
    before = sorted(p.relative_to(private) for p in private.rglob("*"))
    # An upload folder swapped for a link to a private folder after its job was recorded.
    swapped = upload(uploads)
    swapped_job = finish(jobs, submit(jobs, swapped))
    for entry in swapped.parent.iterdir():
        entry.unlink()
    swapped.parent.rmdir()
    swapped.parent.symlink_to(private / "a", target_is_directory=True)
    # An upload folder holding a link to a private folder.
    inner = upload(uploads)
    finish(jobs, submit(jobs, inner))
    (inner.parent / "inner").symlink_to(private / "b", target_is_directory=True)
    # A link that no job holds, in the uploads folder itself.
    stray = uploads / "stray"
    stray.symlink_to(private, target_is_directory=True)
    clock.advance(DAY_S + 1)

    result = run(jobs, uploads)

    assert sorted(p.relative_to(private) for p in private.rglob("*")) == before
    assert (private / "a" / "secret.txt").read_text() == "keep me"
    assert not os.path.lexists(swapped.parent)  # the link alone went
    assert not inner.parent.exists()
    assert stray.is_symlink()  # not a folder of ours: left alone
    assert jobs.get(swapped_job.id).source_removed_at == clock.now
    assert result.folders == 2 and result.errors == 0
    assert result.bytes == len(AUDIO) + len(TRANSCRIPT.text) + 1  # inner's files, not private's


def test_folders_that_no_job_holds_go_once_nothing_changed_in_them_for_the_retention(
    jobs: JobStore, uploads: Path, clock: Clock
) -> None:
    old = uploads / "0ld"
    old.mkdir()
    (old / ".talk.wav.part").write_bytes(AUDIO)  # a request cut off before its job
    arriving = uploads / "arriving"
    arriving.mkdir()
    (arriving / ".big.wav.part").write_bytes(AUDIO)  # an upload still streaming in
    stray_file = uploads / "notes.txt"
    stray_file.write_text("not an upload folder")
    long_ago = (clock.now - timedelta(seconds=DAY_S + 60)).timestamp()
    for path in (old / ".talk.wav.part", old, arriving, stray_file):
        os.utime(path, (long_ago, long_ago))

    result = run(jobs, uploads)

    assert not old.exists() and result.folders == 1 and result.bytes == len(AUDIO)
    assert arriving.is_dir() and stray_file.is_file()


def test_old_ended_jobs_are_forgotten_with_their_transcripts_but_not_the_ones_still_needed(
    jobs: JobStore, uploads: Path, clock: Clock, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    uploaded = finish(jobs, submit(jobs, upload(uploads)))
    kept_in_inbox = inbox / "kept.wav"
    kept_in_inbox.write_bytes(AUDIO)
    still_in_inbox = finish(jobs, submit(jobs, kept_in_inbox, origin="inbox:in"))
    moved_file = inbox / "moved.wav"
    moved_file.write_bytes(AUDIO)
    moved = finish(jobs, submit(jobs, moved_file, origin="inbox:in"))
    jobs.original_moved(moved.id, inbox / "done" / "moved.wav")
    changed = inbox / "changed.wav"
    changed.write_bytes(AUDIO)
    older_version = finish(jobs, submit(jobs, changed, origin="inbox:in"))
    changed.write_bytes(AUDIO + b"more")
    newer_version = finish(jobs, submit(jobs, changed, origin="inbox:in"))
    running = submit(jobs, upload(uploads))
    assert jobs.claim("worker-1") is not None
    clock.advance(2 * DAY_S)
    recent = finish(jobs, submit(jobs, upload(uploads)))

    result = run(jobs, None, upload_s=0, jobs_s=DAY_S)

    assert result.jobs_forgotten == 3
    for gone in (uploaded, moved, older_version):
        with pytest.raises(JobNotFound):
            jobs.get(gone.id)
        assert jobs.transcript(gone.id) is None
    for stays in (still_in_inbox, newer_version, running, recent):
        assert jobs.get(stays.id).status is not None
    hits = {hit.job_id for hit in jobs.search("marmalade")}
    assert hits == {still_in_inbox.id, newer_version.id, recent.id}
    # The forgotten upload's folder is no job's now: it goes with the uploads' own retention.
    assert Path(uploaded.source_path).is_file()
    clock.advance(8 * DAY_S)
    result = run(jobs, uploads, upload_s=7 * DAY_S)
    assert not Path(uploaded.source_path).exists()
    assert Path(running.source_path).is_file()


def test_the_api_shows_the_removal_and_still_serves_the_transcript(
    jobs: JobStore, uploads: Path, clock: Clock
) -> None:
    done = finish(jobs, submit(jobs, upload(uploads)))
    failed = finish(jobs, submit(jobs, upload(uploads)), JobStatus.FAILED)
    clock.advance(DAY_S + 1)
    run(jobs, uploads)
    client = TestClient(
        create_app(
            ApiContext(
                store=jobs, default_options=OPTIONS, allowed_roots=[uploads], uploads_dir=uploads
            )
        )
    )

    shown = client.get(f"/jobs/{done.id}").json()
    assert datetime.fromisoformat(shown["source_removed_at"]) == clock.now
    assert client.get(f"/jobs/{done.id}/transcript").text.strip() == "Hello marmalade."
    audio = client.get(f"/jobs/{done.id}/audio")
    assert audio.status_code == 404 and "upload was removed" in audio.json()["detail"]
    retried = client.post(f"/jobs/{failed.id}/retry")
    assert retried.status_code == 409 and "upload it again" in retried.json()["detail"]


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        (["api", "watch", "work"], (DAY_S, 3600.0)),
        (["api"], (DAY_S, 3600.0)),
        (["watch"], (0.0, 3600.0)),
        (["work"], None),
    ],
)
def test_the_sweep_runs_where_its_files_and_history_are_looked_after(
    store: JobStore, roles: list[Role], expected: tuple[float, float] | None
) -> None:
    settings = Settings(roles=roles, job_retention_s=3600.0)
    registry = WorkerRegistry(store.engine, clock=store.clock)
    job = _scheduler(settings, store, None, registry, RunAgain(lambda: None)).get_job("retention")
    if expected is None:
        assert job is None
        return
    assert job is not None
    assert tuple(job.args[2:]) == expected
    assert (job.args[1] is not None) == ("api" in roles)


def test_the_sweep_interval_follows_a_short_retention() -> None:
    assert sweep_interval_s(DAY_S, 0) == SWEEP_INTERVAL_S
    assert sweep_interval_s(60, 0) == 60
    assert sweep_interval_s(0, 0.1) == 1.0
    assert sweep_interval_s(0, 0) == SWEEP_INTERVAL_S
