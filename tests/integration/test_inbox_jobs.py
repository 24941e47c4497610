"""Inbox jobs through the real model in this process: media-library sidecars, moves of
originals into done/ and failed/, and a file deleted before its job ran."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.helpers.inboxes import enqueue_and_claim, inbox_for
from tests.helpers.media import FIXTURES, make_video, place
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.values import JobRecord
from whisper_transcriber.watcher.originals import move_originals
from whisper_transcriber.watcher.spec import Inbox
from whisper_transcriber.worker.confinement import Confinement
from whisper_transcriber.worker.engine import Engine
from whisper_transcriber.worker.job_runner import run_job


def enqueue_and_run(store: JobStore, engine: Engine, inbox: Inbox, path: Path) -> JobRecord:
    claimed = enqueue_and_claim(store, inbox, path)
    run_job(store, engine, claimed, Confinement.of([inbox.root]))
    return store.get(claimed.id)


def test_media_library_writes_language_tagged_sidecars_and_touches_nothing(
    store: JobStore, engine: Engine, tmp_path: Path
) -> None:
    films = tmp_path / "films"
    video = make_video(films / "Movie (2020)" / "Movie (2020).mkv")
    before = video.stat()
    job = enqueue_and_run(store, engine, inbox_for(f"{films}?media_library=true"), video)
    assert job.status is JobStatus.DONE, job.error
    sidecar = video.with_name("Movie (2020).en.srt")
    assert job.outputs == (str(sidecar),)
    assert "-->" in sidecar.read_text()
    assert sorted(p.name for p in video.parent.iterdir()) == ["Movie (2020).en.srt", video.name]
    after = video.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )


@pytest.mark.parametrize("language", [None, "en"], ids=["detected", "configured"])
def test_media_library_skips_a_video_with_a_subtitle_in_its_language(
    store: JobStore, engine: Engine, tmp_path: Path, language: str | None
) -> None:
    films = tmp_path / "films"
    video = make_video(films / "Show.S01E01.mkv")
    existing = video.with_name("Show.S01E01.eng.forced.srt")
    existing.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    other_language = video.with_name("Show.S01E01.de.srt")
    other_language.write_text("1\n00:00:00,000 --> 00:00:01,000\nhallo\n")
    inbox = inbox_for(f"{films}?media_library=true", language=language)
    job = enqueue_and_run(store, engine, inbox, video)
    assert job.status is JobStatus.DONE
    assert job.note == "skipped: Show.S01E01.eng.forced.srt already has en subtitles"
    assert job.outputs == (str(existing),)
    assert store.transcript(job.id) is None
    assert sorted(p.name for p in films.iterdir()) == sorted(
        [video.name, existing.name, other_language.name]
    )


def test_originals_move_into_done_and_failed(
    store: JobStore, engine: Engine, tmp_path: Path
) -> None:
    inbox_folder = tmp_path / "inbox"
    good = place(FIXTURES / "speech_a.wav", inbox_folder / "2026", "talk.wav")
    bad = inbox_folder / "2026" / "notes.mp3"
    bad.write_text("this is text, not audio\n")
    inbox = inbox_for(f"{inbox_folder}?on_success=move&on_failure=move&formats=txt+srt")

    done = enqueue_and_run(store, engine, inbox, good)
    assert done.status is JobStatus.DONE
    assert done.original_moved_to == str(inbox_folder / "done" / "2026" / "talk.wav")
    assert sorted(p.name for p in (inbox_folder / "done" / "2026").iterdir()) == [
        "talk.srt",
        "talk.txt",
        "talk.wav",
    ]
    failed = enqueue_and_run(store, engine, inbox, bad)
    assert failed.status is JobStatus.FAILED
    assert "cannot decode" in (failed.error or "")
    assert failed.original_moved_to == str(inbox_folder / "failed" / "2026" / "notes.mp3")
    assert (inbox_folder / "failed" / "2026" / "notes.mp3").read_text().startswith("this is")
    assert list((inbox_folder / "2026").iterdir()) == []
    assert move_originals(store) == 0  # nothing left for the sweep


def test_the_sweep_moves_what_a_worker_did_not(
    store: JobStore, engine: Engine, tmp_path: Path
) -> None:
    inbox_folder = tmp_path / "inbox"
    source = place(FIXTURES / "speech_a.wav", inbox_folder, "talk.wav")
    claimed = enqueue_and_claim(store, inbox_for(f"{inbox_folder}?on_failure=move"), source)
    # As when the supervisor fails the attempt of a worker killed mid-job, for the last time.
    store.fail(claimed.id, claimed.attempts, "worker process died (exit code -9)", retryable=False)
    assert move_originals(store) == 0  # just ended: left to its worker for a minute
    assert move_originals(store, min_age_s=0) == 1
    assert (inbox_folder / "failed" / "talk.wav").exists() and not source.exists()
    assert store.get(claimed.id).original_moved_to == str(inbox_folder / "failed" / "talk.wav")


def test_a_file_deleted_before_its_job_ran_fails_with_a_clear_reason(
    store: JobStore, engine: Engine, tmp_path: Path
) -> None:
    inbox_folder = tmp_path / "inbox"
    source = place(FIXTURES / "speech_a.wav", inbox_folder, "gone.wav")
    claimed = enqueue_and_claim(store, inbox_for(str(inbox_folder)), source)
    source.unlink()
    run_job(store, engine, claimed, Confinement.of([inbox_folder]))
    job = store.get(claimed.id)
    assert job.status is JobStatus.FAILED
    assert job.error == f"file not found (deleted or moved before its job ran): {source}"
    assert job.attempts == 1  # a missing file is not retried


def test_an_original_moves_across_file_systems(
    store: JobStore, engine: Engine, tmp_path: Path
) -> None:
    inbox_folder = tmp_path / "inbox"
    inbox_folder.mkdir()
    source = Path(shutil.copy2(FIXTURES / "speech_a.wav", inbox_folder / "talk.wav"))
    with tempfile.TemporaryDirectory(dir="/dev/shm") as other_disk:  # tmpfs: another file system
        assert os.stat(other_disk).st_dev != os.stat(tmp_path).st_dev
        done_dir = Path(other_disk) / "done"
        inbox = inbox_for(f"{inbox_folder}?on_success=move&done_dir={done_dir}&formats=txt")
        job = enqueue_and_run(store, engine, inbox, source)
        assert job.status is JobStatus.DONE
        assert job.original_moved_to == str(done_dir / "talk.wav")
        assert sorted(p.name for p in done_dir.iterdir()) == ["talk.txt", "talk.wav"]
        assert (done_dir / "talk.wav").read_bytes() == (FIXTURES / "speech_a.wav").read_bytes()
        assert not source.exists()
