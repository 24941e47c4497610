"""Moving an inbox job's original into done/ or failed/ once the job has ended, as its plan says.

The plan is the watcher's, recorded on the job when it was queued (watcher/spec.py); so are the
sweep that settles the moves no worker made and the way back on a retry (watcher/originals.py).
This module carries the plan out, and holds the moves.

A move never replaces a file: where the name in done/ is taken, the original takes the number
its transcripts took ("done/talk (2).wav" with "talk (2).txt", see worker/staging.py), or the
next free one; a numbered name too long for the file system has its stem shortened. The place
it got is recorded on the job (original_moved_to)."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

from whisper_transcriber.db.errors import QueueError
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.values import JobRecord
from whisper_transcriber.worker.names import name_max, number_of, numbered_within
from whisper_transcriber.worker.staging import open_planned_folder

# Recorded as original_moved_to when there was nothing of this job's to move (deleted, or
# replaced by a newer version that is a job of its own).
NOTHING_MOVED = ""
MAX_NUMBER = 10_000  # "talk (9999).wav" is the last name a move tries
# Hard links unsupported by the file system (FAT, some SMB mounts): look, then rename.
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK})

log = logging.getLogger(__name__)


def destination_of(job: JobRecord) -> str | None:
    """Where the job's plan sends its original now that it has ended; None: it stays."""
    if job.original_moved_to is not None:
        return None
    if job.status is JobStatus.DONE:
        return job.move_on_done
    if job.status is JobStatus.FAILED:
        return job.move_on_failure
    return None


def _free_paths(wanted: Path, number: int = 1) -> Iterator[Path]:
    """wanted's numbered names ("talk (2).wav", ...) from number on that nothing (no file, no
    link) has now, in order; FileExistsError past the last."""
    limit = name_max(wanted.parent)
    for n in range(number, MAX_NUMBER):
        candidate = wanted.with_name(numbered_within(wanted.name, n, limit))
        if not os.path.lexists(candidate):
            yield candidate
    raise FileExistsError(errno.EEXIST, "no free name", str(wanted))


def number_of_outputs(job: JobRecord) -> int:
    """The number the job's transcripts took ("talk (2).txt": 2), which its original takes too
    where free; 1 when they are not numbered."""
    stem = Path(job.source_path).stem
    for output in map(Path, job.outputs):
        found = number_of(output.name, stem + output.suffix)
        if found is not None and found > 1:
            return found
    return 1


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
        if same_version(Path(destination), job):
            _record(store, job, destination)
            return Path(destination)
        _record(store, job, NOTHING_MOVED)
        return None
    if not same_version(source, job):
        _record(store, job, NOTHING_MOVED)  # the file there now is another version, another job
        return None
    wanted = Path(destination)
    for target in _free_paths(wanted, number_of_outputs(job) if job.outputs else 1):
        try:
            move_without_replacing(source, target)
        except FileExistsError:
            continue  # taken since we looked: the next one
        break
    _record(store, job, str(target))
    log.info("job %s: moved %s to %s", job.id, source, target)
    return target


def move_without_replacing(source: Path, target: Path) -> None:
    """A move into target's folder, reached without following links (made if missing: a
    done/ folder swapped for a link makes the move fail, not land elsewhere), that never
    replaces a file there (FileExistsError: the name is taken); across file systems a copy to a
    hidden name, given its name the same way, then the source removed. Never leaves a second
    copy behind when a step fails."""
    folder = open_planned_folder(target.parent, create=True)
    try:
        try:
            _rename_without_replacing(source, folder, target.name)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            _copy_across(source, target.name, folder)
        with contextlib.suppress(OSError):
            os.fsync(folder)
    finally:
        os.close(folder)


def _rename_without_replacing(source: str | Path, folder: int, name: str, **at: int) -> None:
    """source (relative to at's src_dir_fd, if given) renamed to name in folder, unless that
    name is taken: a hard link, which fails on an existing name atomically, then the old name
    removed; where hard links are unsupported, look, then rename. FileExistsError when taken."""
    src_dir_fd = at.get("src_dir_fd")
    try:
        os.link(source, name, src_dir_fd=src_dir_fd, dst_dir_fd=folder, follow_symlinks=False)
    except OSError as exc:
        if exc.errno == errno.EEXIST or exc.errno not in _NO_HARD_LINKS:
            raise
        if _exists(name, folder):
            raise FileExistsError(errno.EEXIST, "File exists", name) from None
        os.rename(source, name, src_dir_fd=src_dir_fd, dst_dir_fd=folder)
        return
    try:
        os.unlink(source, dir_fd=src_dir_fd)
    except OSError:
        os.unlink(name, dir_fd=folder)  # no second copy: the original stays where it was
        raise


def _exists(name: str, folder: int) -> bool:
    try:
        os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _copy_across(source: Path, name: str, folder: int) -> None:
    # Short and fixed in length, as a name near the file system's limit must fit.
    partial = f".wt-moving-{secrets.token_hex(6)}.tmp"
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
        _rename_without_replacing(partial, folder, name, src_dir_fd=folder)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial, dir_fd=folder)
        raise
    try:
        source.unlink()
    except OSError:
        os.unlink(name, dir_fd=folder)  # the original stays where it was; the next sweep retries
        raise


def same_version(path: Path, job: JobRecord) -> bool:
    """Whether the file at path is the version of the source the job knows (size and mtime)."""
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
