"""The retention sweep: upload folders and old jobs past their keeping time (a scheduler task).

An upload lives in a folder of its own under uploads_dir, with the transcripts written beside it;
once every job of its file has ended upload_retention_s ago, the folder goes as a whole. Its
transcript stays in the database (/jobs/{id}/transcript renders from there) and the job records
when its source went (source_removed_at). Only entries of uploads_dir itself are removed, reached
through a descriptor of it and never through a link: a folder swapped for a link loses the link,
never what it points at.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.retention import Retention
from whisper_transcriber.worker.staging import open_planned_folder

# How often the sweep runs at most; a shorter retention runs it that often instead.
SWEEP_INTERVAL_S = 600.0
MIN_SWEEP_INTERVAL_S = 1.0
FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    """What one run removed (and what it left because a job needs it)."""

    folders: int = 0  # upload folders (or stray entries) removed
    files: int = 0
    bytes: int = 0
    jobs_marked: int = 0  # jobs whose source_removed_at was set
    jobs_forgotten: int = 0  # jobs deleted, with their transcripts
    kept: int = 0  # expired folders left because a job still needs them
    errors: int = 0  # folders that could not be removed (tried again next run)


def sweep_interval_s(upload_retention_s: float, job_retention_s: float) -> float:
    """SWEEP_INTERVAL_S, or the shortest retention that is on when it is shorter."""
    shortest = min((s for s in (upload_retention_s, job_retention_s) if s > 0), default=0.0)
    return max(min(SWEEP_INTERVAL_S, shortest or SWEEP_INTERVAL_S), MIN_SWEEP_INTERVAL_S)


def sweep(
    store: JobStore,
    uploads_dir: Path | None,
    upload_retention_s: float,
    job_retention_s: float,
) -> SweepResult:
    """One run: uploads (when uploads_dir is given and upload_retention_s is not 0), then jobs
    (when job_retention_s is not 0); logs one line when it removed or kept anything."""
    result = SweepResult()
    if uploads_dir is not None and upload_retention_s > 0:
        remove_expired_uploads(store, uploads_dir, upload_retention_s, result)
    if job_retention_s > 0:
        ended_before = store.clock() - timedelta(seconds=job_retention_s)
        result.jobs_forgotten = Retention(store).forget_jobs(ended_before)
    if result.folders or result.jobs_marked or result.jobs_forgotten or result.kept:
        log.info(
            "retention: removed %s upload folder(s), %s file(s), %s bytes (%s job(s) marked "
            "source removed); deleted %s job(s) with their transcripts; kept %s folder(s) a job "
            "still needs; %s error(s)",
            result.folders,
            result.files,
            result.bytes,
            result.jobs_marked,
            result.jobs_forgotten,
            result.kept,
            result.errors,
        )
    return result


def remove_expired_uploads(
    store: JobStore, uploads_dir: Path, retention_s: float, result: SweepResult
) -> None:
    """Folders of uploads whose jobs all ended retention_s ago, then folders no job holds (a
    request cut off before its job was recorded, a removal that failed) older than that."""
    retention = Retention(store)
    root = uploads_dir.expanduser().resolve()
    ended_before = store.clock() - timedelta(seconds=retention_s)
    try:
        root_fd = open_planned_folder(root, create=False)
    except FileNotFoundError:
        return  # no upload yet
    except OSError as exc:
        _failed(root, exc, result)
        return
    tried: set[str] = set()
    try:
        for name in retention.expired_upload_folders(root, ended_before):
            tried.add(name)
            marked = retention.mark_removed(root / name, ended_before)
            if marked is None:
                result.kept += 1
                continue
            if retention.in_use(root / name):  # a new job of the same file, since the mark
                retention.unmark(marked)
                result.kept += 1
                continue
            result.jobs_marked += len(marked)
            _remove(root_fd, root, name, result)
        in_use = retention.folders_in_use(root)
        for name in os.listdir(root_fd):
            if name in tried or name in in_use:
                continue
            if _unused_folder(root_fd, name, ended_before.timestamp()):
                _remove(root_fd, root, name, result)
    finally:
        os.close(root_fd)


def _unused_folder(root_fd: int, name: str, before: float) -> bool:
    """A real folder (not a link) in which nothing changed since `before` (an upload still
    arriving writes its partial file)."""
    try:
        info = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
        if not stat.S_ISDIR(info.st_mode) or info.st_mtime >= before:
            return False
        fd = os.open(name, FOLDER_FLAGS, dir_fd=root_fd)
    except OSError:
        return False
    try:
        for entry in os.listdir(fd):
            if os.stat(entry, dir_fd=fd, follow_symlinks=False).st_mtime >= before:
                return False
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def _remove(root_fd: int, root: Path, name: str, result: SweepResult) -> None:
    """Remove root/name without following a link: a folder with what it holds, anything else
    (a link put in a folder's place) as the entry alone."""
    try:
        info = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
    except FileNotFoundError:
        return  # already gone (removed by hand, or by another instance's sweep)
    except OSError as exc:
        _failed(root / name, exc, result)
        return
    try:
        if stat.S_ISDIR(info.st_mode):
            files, size = _measure(root_fd, name)
            # rmtree with dir_fd works on descriptors and refuses a folder swapped for a link.
            shutil.rmtree(name, dir_fd=root_fd)
        else:
            files, size = 1, info.st_size if stat.S_ISREG(info.st_mode) else 0
            os.unlink(name, dir_fd=root_fd)
            if stat.S_ISLNK(info.st_mode):
                log.warning(
                    "retention: %s was a symbolic link; removed the link alone", root / name
                )
    except FileNotFoundError:
        return
    except OSError as exc:
        _failed(root / name, exc, result)
        return
    result.folders += 1
    result.files += files
    result.bytes += size


def _measure(root_fd: int, name: str) -> tuple[int, int]:
    """Files (anything not a folder) under root/name and the bytes of the regular ones."""
    files = size = 0
    for _, _, names, fd in os.fwalk(name, dir_fd=root_fd, follow_symlinks=False):
        for entry in names:
            files += 1
            with contextlib.suppress(OSError):
                info = os.stat(entry, dir_fd=fd, follow_symlinks=False)
                size += info.st_size if stat.S_ISREG(info.st_mode) else 0
    return files, size


def _failed(path: Path, exc: OSError, result: SweepResult) -> None:
    result.errors += 1
    log.warning("retention: cannot remove %s: %s (tried again next run)", path, exc)
