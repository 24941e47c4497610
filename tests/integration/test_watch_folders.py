"""Inbox watching on real folders with real files and a real database: what becomes a job, once."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

from watchdog.observers.polling import PollingObserver

from tests.helpers.inboxes import WAIT_S, jobs, wait_for_jobs, watching
from tests.helpers.media import FIXTURES
from tests.helpers.waiting import wait_until
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.transcript import Segment, Transcript
from whisper_transcriber.db.values import JobRecord
from whisper_transcriber.watcher.inbox import InboxWatcher
from whisper_transcriber.watcher.intake import Intake
from whisper_transcriber.worker.originals import move_original


def names(store: JobStore) -> list[str]:
    return sorted(Path(job.source_path).name for job in jobs(store))


def wait_until_settled(watcher: InboxWatcher, before: int, count: int = 1) -> None:
    """Until `count` more files went through settling to the intake (whatever it made of them)."""
    wait_until(lambda: watcher.settled >= before + count, WAIT_S, f"{count} settled file(s)")


def finish(store: JobStore, job: JobRecord) -> None:
    """Stands in for a worker: this file tests the watcher, not transcription."""
    claimed = store.claim("test-worker")
    assert claimed is not None and claimed.id == job.id
    store.complete(job.id, claimed.attempts, Transcript("en", 1.0, 1.0, (Segment(0, 0, 1, "x"),)))


def test_slow_writer_gives_one_job_after_the_last_chunk(tmp_path: Path, database_url: str) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    data = (FIXTURES / "speech_a.wav").read_bytes()
    chunk = len(data) // 20 + 1
    target = inbox / "talk.wav"
    with watching(database_url, inbox, settle_s=2.0) as (watcher, store):
        with target.open("wb") as copy:
            # Each chunk waits until the watcher has looked at the file as it is (its settle loop
            # looks every quarter second): a copy in 20 steps over about five seconds, every
            # partial state seen.
            for start in range(0, len(data), chunk):
                assert jobs(store) == [], "queued while still being written"
                copy.write(data[start : start + chunk])
                copy.flush()
                written = min(start + chunk, len(data))
                wait_until(
                    lambda size=written: watcher.tracker.seen_size(target) == size,
                    WAIT_S,
                    f"the watcher to see {written} bytes",
                )
        last_write = time.time()
        [job] = wait_for_jobs(store, 1)
        assert job.source_size == len(data)
        assert job.created_at.timestamp() >= last_write
        assert job.origin == "inbox:inbox"


def test_five_hundred_files_at_once_give_five_hundred_jobs(
    tmp_path: Path, database_url: str
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    data = (FIXTURES / "speech_c.ogg").read_bytes()
    with watching(database_url, inbox) as (watcher, store):
        for n in range(500):
            (inbox / f"clip-{n:03}.ogg").write_bytes(data)
        found = wait_for_jobs(store, 500)
        assert len({job.source_path for job in found}) == 500
        assert watcher.rescan() == 0  # nothing left that no job knows
        assert len(jobs(store)) == 500


def test_a_polling_inbox_sees_new_files(tmp_path: Path, sqlite_url: str) -> None:
    inbox = tmp_path / "nas"
    inbox.mkdir()
    with watching(sqlite_url, f"{inbox}?observer=polling&poll_interval_s=0.5") as (watcher, store):
        assert [type(o) for o in watcher._observers] == [PollingObserver]
        shutil.copy(FIXTURES / "speech_b.flac", inbox / "talk.flac")
        (inbox / "sub").mkdir()
        shutil.copy(FIXTURES / "speech_c.ogg", inbox / "sub" / "note.ogg")
        wait_for_jobs(store, 2)
        assert names(store) == ["note.ogg", "talk.flac"]


def test_files_added_while_stopped_are_found_at_start(tmp_path: Path, database_url: str) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with watching(database_url, inbox) as (_watcher, store):
        assert jobs(store) == []
    (inbox / "deep" / "er").mkdir(parents=True)
    shutil.copy(FIXTURES / "speech_a.wav", inbox / "deep" / "er" / "while-down.wav")
    with watching(database_url, inbox) as (_watcher, store):
        wait_for_jobs(store, 1)
        assert names(store) == ["while-down.wav"]


def test_temporary_and_system_files_are_ignored(tmp_path: Path, sqlite_url: str) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    clutter = [
        "a.wav.part", "b.tmp", "c.crdownload", "d.partial", "~$e.wav", ".f.wav", "._g.wav",
        ".DS_Store", "Thumbs.db", "@eaDir/h.wav", "#recycle/i.wav", "notes.txt", "talk.srt",
    ]  # fmt: skip
    with watching(sqlite_url, inbox) as (watcher, store):
        for name in clutter:
            (inbox / name).parent.mkdir(exist_ok=True)
            shutil.copy(FIXTURES / "speech_a.wav", inbox / name)
        shutil.copy(FIXTURES / "speech_a.wav", inbox / "real.wav")  # after the clutter
        wait_for_jobs(store, 1)
        wait_until(lambda: watcher.tracker.pending() == 0, WAIT_S, "nothing left settling")
        assert watcher.rescan() == 0
        assert names(store) == ["real.wav"]


def test_files_renamed_or_moved_into_place_are_seen(tmp_path: Path, sqlite_url: str) -> None:
    inbox, elsewhere = tmp_path / "inbox", tmp_path / "elsewhere"
    inbox.mkdir()
    (elsewhere / "album").mkdir(parents=True)
    for name in ("album/one.wav", "album/two.flac", "moved.ogg"):
        shutil.copy(FIXTURES / "speech_a.wav", elsewhere / name)
    with watching(sqlite_url, inbox) as (_watcher, store):
        shutil.copy(FIXTURES / "speech_a.wav", inbox / "download.wav.part")
        os.rename(inbox / "download.wav.part", inbox / "download.wav")  # the usual download finish
        os.rename(elsewhere / "moved.ogg", inbox / "moved.ogg")
        os.rename(elsewhere / "album", inbox / "album")  # a folder brings no events for its files
        wait_for_jobs(store, 4)
        assert names(store) == ["download.wav", "moved.ogg", "one.wav", "two.flac"]


def test_a_done_file_is_not_redone_and_a_changed_one_is(tmp_path: Path, database_url: str) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    kept = Path(shutil.copy(FIXTURES / "speech_a.wav", tmp_path / "kept.wav"))
    with watching(database_url, inbox) as (watcher, store):
        shutil.copy2(kept, inbox / "talk.wav")
        [job] = wait_for_jobs(store, 1)
        finish(store, job)
        # Dropped again: the same content, size and mtime (copy2 keeps the mtime).
        settled = watcher.settled
        (inbox / "talk.wav").unlink()
        shutil.copy2(kept, inbox / "talk.wav")
        wait_until_settled(watcher, settled)
        assert watcher.rescan() == 0
        assert len(jobs(store)) == 1
    with watching(database_url, inbox) as (watcher, store):  # and across a restart
        assert watcher.rescan() == 0
        assert len(jobs(store)) == 1
        with (inbox / "talk.wav").open("ab") as f:
            f.write(b"\0" * 3200)  # changed after it was done: transcribed again
        newer, older = wait_for_jobs(store, 2)
        assert newer.source_path == older.source_path
        assert newer.source_size == older.source_size + 3200


def test_a_file_back_from_failed_is_queued_again(tmp_path: Path, sqlite_url: str) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with watching(sqlite_url, f"{inbox}?on_failure=move") as (_watcher, store):
        shutil.copy2(FIXTURES / "speech_a.wav", inbox / "talk.wav")
        [job] = wait_for_jobs(store, 1)
        assert job.move_on_failure == str(inbox / "failed" / "talk.wav")
        claimed = store.claim("test-worker")
        assert claimed is not None
        failed = store.fail(job.id, claimed.attempts, "broken", retryable=False)
        assert move_original(store, failed) == inbox / "failed" / "talk.wav"
        os.rename(inbox / "failed" / "talk.wav", inbox / "talk.wav")  # the user puts it back
        wait_until(
            lambda: store.get(job.id).status.value == "queued", WAIT_S, "the job to be queued"
        )
        assert len(jobs(store)) == 1
        assert store.get(job.id).original_moved_to is None


def test_enqueueing_runs_off_the_observer_thread(tmp_path: Path, sqlite_url: str) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    takers: list[str] = []

    class RecordingIntake(Intake):
        def take(self, path: Path) -> JobRecord | None:
            takers.append(threading.current_thread().name)
            return super().take(path)

    with watching(sqlite_url, inbox, intake_class=RecordingIntake) as (_watcher, store):
        for n in range(3):
            shutil.copy(FIXTURES / "speech_a.wav", inbox / f"{n}.wav")
        wait_for_jobs(store, 3)
    assert takers == ["inbox-settle"] * 3
