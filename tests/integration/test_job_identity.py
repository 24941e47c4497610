"""What counts as the same work (db/identity.py), on a real SQLite file and the real PostgreSQL:
new bytes are a new version even with the old size and mtime, a chmod is not, new options are
new work, force always is, and an upload sent again attaches to its job."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from whisper_transcriber.db.errors import UnstorablePath
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.values import JobOptions, JobQuery
from whisper_transcriber.watcher.filters import FileFilter
from whisper_transcriber.watcher.intake import Intake
from whisper_transcriber.watcher.spec import Inbox
from whisper_transcriber.worker.confinement import Confinement

OPTIONS = JobOptions()
DIGEST = "ab" * 32


def replace_bytes_keeping_size_and_mtime(path: Path, content: bytes) -> None:
    """What `cp -p` of an older copy, `touch -r` or a restore from backup leaves behind."""
    before = path.stat()
    assert len(content) == before.st_size
    path.write_bytes(content)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_new_bytes_with_old_size_and_mtime_are_a_new_version(
    store: JobStore, tmp_path: Path
) -> None:
    path = tmp_path / "talk.wav"
    path.write_bytes(b"first recording")
    first, _ = store.enqueue(path, OPTIONS, "cli")
    replace_bytes_keeping_size_and_mtime(path, b"other recording")

    second, created = store.enqueue(path, OPTIONS, "cli")

    assert created and second.id != first.id
    assert store.get(first.id).status is JobStatus.CANCELLED  # it would only transcribe the new
    assert store.enqueue(path, OPTIONS, "cli") == (store.get(second.id), False)


def test_a_copy_restored_over_the_file_is_a_new_version(store: JobStore, tmp_path: Path) -> None:
    """`cp -p older.wav talk.wav`: the same size and mtime, a new inode's worth of change."""
    path = tmp_path / "talk.wav"
    path.write_bytes(b"A" * 200_000)
    older = tmp_path / "backup" / "talk.wav"
    older.parent.mkdir()
    older.write_bytes(b"B" * 200_000)
    stat = path.stat()
    os.utime(older, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    first, _ = store.enqueue(path, OPTIONS, "cli")

    shutil.copy2(older, tmp_path / "restored.tmp")
    os.replace(tmp_path / "restored.tmp", path)

    assert store.enqueue(path, OPTIONS, "cli")[1] is True
    assert store.get(first.id).status is JobStatus.CANCELLED


def test_a_chmod_leaves_the_version_alone(store: JobStore, tmp_path: Path) -> None:
    path = tmp_path / "talk.wav"
    path.write_bytes(b"x" * 300_000)
    first, _ = store.enqueue(path, OPTIONS, "cli")
    ctime_before = path.stat().st_ctime_ns
    path.chmod(0o600)
    os.link(path, tmp_path / "second name.wav")  # a hard link moves ctime too
    assert path.stat().st_ctime_ns != ctime_before

    again, created = store.enqueue(path, OPTIONS, "cli")

    assert not created and again.id == first.id
    assert again.source_ctime_ns == path.stat().st_ctime_ns  # recorded: the next scan is quiet
    assert store.get(first.id).status is JobStatus.QUEUED


def test_other_options_are_new_work_and_the_same_options_are_not(
    store: JobStore, tmp_path: Path
) -> None:
    path = tmp_path / "talk.wav"
    path.write_bytes(b"speech")
    plain, _ = store.enqueue(path, OPTIONS, "api")
    variants = [
        JobOptions(task="translate"),
        JobOptions(language="de"),
        JobOptions(formats=("srt",)),
        JobOptions(word_timestamps=True),
        JobOptions(output_dir=str(tmp_path / "out")),
        JobOptions(initial_prompt="Kubernetes"),
    ]
    ids = {plain.id}
    for options in variants:
        job, created = store.enqueue(path, options, "api")
        assert created, options
        ids.add(job.id)
        assert store.enqueue(path, options, "api") == (store.get(job.id), False)
    assert len(ids) == len(variants) + 1
    # Options spelled out at their defaults are the same options.
    assert store.enqueue(path, JobOptions(task="transcribe", beam_size=5), "api")[0].id == plain.id
    # Another version of the file does not cancel a job of this version with other options.
    assert all(store.get(i).status is JobStatus.QUEUED for i in ids)


def test_force_records_a_new_job_that_later_requests_find(store: JobStore, tmp_path: Path) -> None:
    path = tmp_path / "talk.wav"
    path.write_bytes(b"speech")
    first, _ = store.enqueue(path, OPTIONS, "api")

    forced, created = store.enqueue(path, OPTIONS, "api", force=True)
    again, created_again = store.enqueue(path, OPTIONS, "api")

    assert created and forced.id != first.id
    assert not created_again and again.id == forced.id
    assert store.get(first.id).status is JobStatus.QUEUED  # the same version: not superseded


def test_an_upload_sent_again_attaches_to_its_job_until_that_failed(
    store: JobStore, tmp_path: Path
) -> None:
    def upload(folder: str, name: str = "episode.mkv") -> Path:
        path = tmp_path / folder / name
        path.parent.mkdir()
        path.write_bytes(b"the same bytes")
        return path

    first, _ = store.enqueue(upload("u1"), OPTIONS, "upload", content_digest=DIGEST)
    retry, created = store.enqueue(upload("u2"), OPTIONS, "upload", content_digest=DIGEST)
    assert not created and retry.id == first.id

    _, created = store.enqueue(upload("u3", "other.mkv"), OPTIONS, "upload", content_digest=DIGEST)
    assert created  # outputs are named after the file: another name is other work
    _, created = store.enqueue(
        upload("u4"), JobOptions(formats=("srt",)), "upload", content_digest=DIGEST
    )
    assert created

    claimed = store.claim("w")
    assert claimed is not None and claimed.id == first.id
    store.fail(first.id, claimed.attempts, "corrupt", retryable=False)
    after_failure, created = store.enqueue(upload("u5"), OPTIONS, "upload", content_digest=DIGEST)
    assert created and after_failure.id != first.id


def test_racing_recorders_make_one_job(db_engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "talk.wav"
    path.write_bytes(b"speech")
    stores = [JobStore(db_engine) for _ in range(4)]
    results: list[tuple[int, bool]] = []
    start = threading.Barrier(len(stores))

    def record(store: JobStore) -> None:
        start.wait()
        job, created = store.enqueue(path, OPTIONS, "api")
        results.append((job.id, created))

    threads = [threading.Thread(target=record, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({job_id for job_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1


def test_jobs_from_before_inode_and_ctime_were_recorded_are_not_redone(
    store: JobStore, db_engine: Engine, tmp_path: Path
) -> None:
    """As migration 0007 leaves them: inode and ctime unknown, the key without them."""
    path = tmp_path / "talk.wav"
    path.write_bytes(b"speech")
    old, _ = store.enqueue(path, OPTIONS, "cli")
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE jobs SET source_inode = -1, source_ctime_ns = -1, "
                "source_fingerprint = NULL, dedupe_key = 'from-0007' WHERE id = :id"
            ),
            {"id": old.id},
        )
    inbox = Inbox(root=tmp_path, name="talks", options=OPTIONS)
    intake = Intake(store, [inbox], FileFilter(), Confinement.of([tmp_path]))
    assert list(intake.new_files(inbox)) == []

    again, created = store.enqueue(path, OPTIONS, "cli")
    assert not created and again.id == old.id and again.source_inode == path.stat().st_ino


@pytest.mark.parametrize("change", ["same size and mtime", "chmod"])
def test_a_rescan_sees_new_bytes_and_not_a_chmod(
    store: JobStore, tmp_path: Path, change: str
) -> None:
    inbox_root = tmp_path / "inbox"
    inbox_root.mkdir()
    path = inbox_root / "talk.wav"
    path.write_bytes(b"R" * 100_000)
    inbox = Inbox(root=inbox_root, name="talks", options=OPTIONS)
    intake = Intake(store, [inbox], FileFilter(), Confinement.of([inbox_root]))
    first = intake.take(path)
    assert first is not None and list(intake.new_files(inbox)) == []

    if change == "chmod":
        path.chmod(0o640)
        assert list(intake.new_files(inbox)) == [path]  # looked at closer by enqueue...
        assert intake.take(path) is None
        assert list(intake.new_files(inbox)) == []  # ...and quiet from then on
    else:
        replace_bytes_keeping_size_and_mtime(path, b"S" * 100_000)
        assert list(intake.new_files(inbox)) == [path]
        second = intake.take(path)
        assert second is not None and second.id != first.id
        assert list(intake.new_files(inbox)) == []


def test_a_name_that_is_not_utf8_is_refused_with_a_reason_and_records_nothing(
    store: JobStore, tmp_path: Path
) -> None:
    path = Path(os.fsdecode(os.path.join(os.fsencode(tmp_path), b"caf\xe9.wav")))
    path.write_bytes(b"speech")
    with pytest.raises(UnstorablePath, match=r"caf\\xe9\.wav: the name is not valid UTF-8"):
        store.enqueue(path, OPTIONS, "cli")
    assert store.list_jobs(JobQuery(), 10) == []


def test_an_inbox_does_not_take_again_a_file_done_with_other_options(
    store: JobStore, tmp_path: Path
) -> None:
    """Transcribed through the API with other options, then chmod-ed: the watcher sees a known
    version (any options), as its rescan does, and queues nothing."""
    inbox_root = tmp_path / "inbox"
    inbox_root.mkdir()
    path = inbox_root / "talk.wav"
    path.write_bytes(b"T" * 70_000)
    by_api, _ = store.enqueue(path, JobOptions(formats=("srt",), language="de"), "api")
    inbox = Inbox(root=inbox_root, name="talks", options=OPTIONS)
    intake = Intake(store, [inbox], FileFilter(), Confinement.of([inbox_root]))
    assert list(intake.new_files(inbox)) == []

    path.chmod(0o600)
    assert intake.take(path) is None
    assert list(intake.new_files(inbox)) == []
    assert [job.id for job in store.list_jobs(JobQuery(), 10)] == [by_api.id]


def test_links_and_folders_reached_through_links_are_known_to_a_rescan(
    store: JobStore, tmp_path: Path
) -> None:
    inbox_root = tmp_path / "inbox"
    library = inbox_root / "library"
    library.mkdir(parents=True)
    (library / "talk.wav").write_bytes(b"L" * 1000)
    (inbox_root / "linked.wav").symlink_to(library / "talk.wav")
    (inbox_root / "shortcut").symlink_to(library, target_is_directory=True)
    inbox = Inbox(root=inbox_root, name="talks", options=OPTIONS)
    intake = Intake(store, [inbox], FileFilter(), Confinement.of([inbox_root]))
    for path in intake.new_files(inbox):
        intake.take(path)
    assert list(intake.new_files(inbox)) == []
