"""Moving an inbox job's original into done/ or failed/ once the job has ended."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import stat
from datetime import timedelta
from pathlib import Path

from db.errors import QueueError
from db.job_store import JobStore
from db.models import JobStatus
from db.values import JobRecord
from worker.staging import open_planned_folder

# Recorded as original_moved_to when there was nothing of this job's to move (deleted, or
# replaced by a newer version that is a job of its own).
NOTHING_MOVED = ""
# The sweep leaves a just-ended job to its worker, which moves the original right after.
SWEEP_MIN_AGE_S = 60.0

log = logging.getLogger(__name__)


def destination_of(job: JobRecord) -> str | None:
    if job.original_moved_to is not None:
        return None
    if job.status is JobStatus.DONE:
        return job.move_on_done
    if job.status is JobStatus.FAILED:
        return job.move_on_failure
    return None


def free_path(wanted: Path) -> Path:
    """wanted, or "name (2).ext" and so on when a file of that name is already there."""
    candidate, number = wanted, 1
    while candidate.exists():
        number += 1
        candidate = wanted.with_name(f"{wanted.stem} ({number}){wanted.suffix}")
    return candidate


def move_original(store: JobStore, job: JobRecord) -> Path | None:
    """Move the original if this ended job asks for it, and record where it went.

    Safe to repeat: the service sweeps jobs whose move did not happen (a worker killed between
    finishing and moving, or a job failed by the supervisor). Never moves a newer version."""
    destination = destination_of(job)
    if destination is None:
        return None
    source = Path(job.source_path)
    if not source.exists():
        # Moved by an earlier try that could not record it, or deleted by someone.
        if _same_file(Path(destination), job):
            _record(store, job, destination)
            return Path(destination)
        _record(store, job, NOTHING_MOVED)
        return None
    if not _same_file(source, job):
        _record(store, job, NOTHING_MOVED)  # the file there now is another version, another job
        return None
    target = free_path(Path(destination))
    _move(source, target)
    _record(store, job, str(target))
    log.info("job %s: moved %s to %s", job.id, source, target)
    return target


def _move(source: Path, target: Path) -> None:
    """A rename into target's folder, reached without following links (made if missing: a
    done/ folder swapped for a link makes the move fail, not land elsewhere); across file
    systems a copy to a hidden name, renamed into place, then the source removed. Never leaves
    a second copy behind when a step fails."""
    folder = open_planned_folder(target.parent, create=True)
    try:
        try:
            os.rename(source, target.name, dst_dir_fd=folder)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            _copy_across(source, target.name, folder)
        with contextlib.suppress(OSError):
            os.fsync(folder)
    finally:
        os.close(folder)


def _copy_across(source: Path, name: str, folder: int) -> None:
    partial = f".{name}.moving"
    info = source.stat()
    try:
        out = os.open(
            partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=folder
        )
        with source.open("rb") as src, os.fdopen(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
            dst.flush()
            # What copy2 keeps: the mode and times (the job knows its file by size and mtime).
            os.fchmod(dst.fileno(), stat.S_IMODE(info.st_mode))
            os.utime(dst.fileno(), ns=(info.st_atime_ns, info.st_mtime_ns))
            os.fsync(dst.fileno())
        os.rename(partial, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial, dir_fd=folder)
        raise
    try:
        source.unlink()
    except OSError:
        os.unlink(name, dir_fd=folder)  # the original stays where it was; the next sweep retries
        raise


def move_originals(store: JobStore, min_age_s: float = SWEEP_MIN_AGE_S) -> int:
    """The sweep: ended jobs still waiting for their move (a worker moves its own right away,
    so only jobs that ended min_age_s ago are taken); returns how many were settled."""
    settled = 0
    for job in store.originals_to_move(ended_before=store.clock() - timedelta(seconds=min_age_s)):
        try:
            move_original(store, job)
            settled += 1
        except OSError as exc:
            log.warning("job %s: cannot move %s: %s", job.id, job.source_path, exc)
            store.original_move_failed(job.id)  # to the back of the sweep's line
    return settled


def requeue(store: JobStore, job_id: int) -> JobRecord:
    """Queue a failed or cancelled job again. A failed one whose original went to failed/ gets
    it back at its old place first, so that the new attempt finds it."""
    job = store.get(job_id)
    moved = Path(job.original_moved_to) if job.original_moved_to else None
    source = Path(job.source_path)
    back = job.status is JobStatus.FAILED and moved is not None and not source.exists()
    if back and moved is not None and _same_file(moved, job):
        _move(moved, source)
        log.info("job %s: put %s back at %s for a retry", job.id, moved, source)
    return store.retry(job_id)


def _same_file(path: Path, job: JobRecord) -> bool:
    try:
        stat = path.stat()
    except OSError:
        return False
    return (stat.st_size, stat.st_mtime_ns) == (job.source_size, job.source_mtime_ns)


def _record(store: JobStore, job: JobRecord, where: str) -> None:
    try:
        store.original_moved(job.id, where)
    except QueueError as exc:  # the next sweep records it (the source is gone by then)
        log.warning("job %s: could not record the move of its original: %s", job.id, exc)
