"""What inbox rescans ask the database and record in it, on a real SQLite file and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from whisper_transcriber.db.identity import is_recorded
from whisper_transcriber.db.inbox_scans import InboxScans
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.values import InboxScan, JobOptions


def make_file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"audio")
    return path.resolve()


def test_known_files_are_the_versions_of_jobs_under_the_folder(
    store: JobStore, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    nested = make_file(inbox / "sub" / "a.wav")
    moved_away = make_file(inbox / "b.wav")
    make_file(tmp_path / "inbox2" / "c.wav")  # a sibling whose name starts as the inbox's does
    # A job that failed and whose original went to failed/ knows no file at its old path.
    store.enqueue(moved_away, JobOptions(), "inbox:inbox")
    claimed = store.claim("w")
    assert claimed is not None
    store.fail(claimed.id, claimed.attempts, "unreadable", retryable=False)
    store.original_moved(claimed.id, inbox / "failed" / "b.wav")
    for path in (nested, tmp_path / "inbox2" / "c.wav"):
        store.enqueue(path, JobOptions(), "inbox:inbox")

    known = InboxScans(store).known_files(inbox.resolve())
    assert set(known) == {str(nested)}
    stat = nested.stat()
    assert is_recorded(
        known[str(nested)], (stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns)
    )


def test_inbox_scans_keep_the_latest_of_each_inbox_by_name(store: JobStore) -> None:
    scans = InboxScans(store)
    first = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    nas = InboxScan("nas", "/mnt/nas", "polling", 10.0, first, 3, "front:12")
    scans.record(nas)
    scans.record(InboxScan("calls", "/srv/calls", "native", None, first, 0, "front:12"))
    assert scans.latest() == [
        InboxScan("calls", "/srv/calls", "native", None, first, 0, "front:12"),
        nas,
    ]
    # The next scan overwrites its inbox's row, whichever instance made it.
    later = InboxScan("nas", "/mnt/nas", "native", None, first + timedelta(minutes=5), 0, "b:7")
    scans.record(later)
    assert [scan.name for scan in scans.latest()] == ["calls", "nas"]
    assert scans.latest()[1] == later  # its time comes back aware, in UTC
