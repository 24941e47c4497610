"""The files a job published, rewritten when its speakers are renamed ("Speaker 1" becomes Ada).

A rename marks the transcript's files outdated (db/speaker_names.py); every instance with the work
or watch role, which can reach them, looks for such jobs every few seconds (`RenamedFiles`).

A file is rewritten only while it holds exactly what the job wrote (rendered with the names it
shows now), is a plain file of the service's own user, and no newer job of the source has
published at its name: one edited by hand, replaced, turned into a link or removed keeps what it
has, for good (said once in the log). The new text goes to a temporary in the same folder
(reached from / without following links, as staging does) and replaces the file by a rename while
the transcript's row is locked, only if the file is still the one compared and the names are
still those staged: otherwise the next pass looks again. A folder that cannot be reached now
(a NAS share away, an I/O error) keeps the job pending, tried again later, less and less often.
Running a pass twice, or after a crash half-way, changes nothing more.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import secrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from whisper_transcriber.db.errors import QueueError
from whisper_transcriber.db.speaker_names import OutdatedFiles, SpeakerNames
from whisper_transcriber.db.store_base import StoreBase
from whisper_transcriber.db.values import OUTPUT_FORMATS
from whisper_transcriber.worker.names import printable
from whisper_transcriber.worker.outputs import rendered
from whisper_transcriber.worker.staging import (
    TEMPORARY_PREFIX,
    TEMPORARY_SUFFIX,
    open_planned_folder,
)

BATCH = 20  # jobs a pass takes on: a burst of renames is worked through a batch at a time
FIRST_RETRY_S = 30.0  # after a folder could not be reached; doubling up to
LAST_RETRY_S = 3600.0
# A rewrite's temporaries have their own prefix (a job's hand-back never removes one in flight);
# one this old was left by a pass that was killed, and is removed by the next pass there.
REWRITE_PREFIX = f"{TEMPORARY_PREFIX}names-"
STALE_TEMPORARY_S = 3600.0
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

log = logging.getLogger(__name__)


class Unreachable(Exception):
    """A folder of the job's files cannot be reached now: the job is tried again later."""


@dataclass(frozen=True)
class _Seen:
    """A file as compared: the very one must still be there when it is replaced."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int
    mode: int

    @classmethod
    def of(cls, found: os.stat_result) -> _Seen:
        return cls(
            found.st_dev,
            found.st_ino,
            found.st_size,
            found.st_mtime_ns,
            found.st_ctime_ns,
            found.st_mode,
        )


@dataclass
class _Rewrite:
    """One file's new text, staged beside it."""

    job_id: int
    path: Path
    folder_fd: int
    seen: _Seen
    temporary: str | None = None


@dataclass
class _Retry:
    at: float
    delay: float


@dataclass
class RenamedFiles:
    """The pass the scheduler runs, with when each job whose folders could not be reached is
    tried again (in this process: another instance may reach them sooner)."""

    db: StoreBase
    _waiting: dict[int, _Retry] = field(default_factory=dict)

    def rewrite_renamed_files(self) -> list[int]:
        """Rewrite the files of jobs whose speakers were renamed; the jobs now up to date."""
        names = SpeakerNames(self.db)
        now = time.monotonic()
        skip = [job_id for job_id, retry in self._waiting.items() if retry.at > now]
        done = []
        for job_id in names.outdated(BATCH, skip=skip):
            try:
                if rewrite_job(names, job_id):
                    done.append(job_id)
                self._waiting.pop(job_id, None)
            except Unreachable as exc:
                self._wait(job_id, now, f"job {job_id}: its files wait for their names: {exc}")
            except OSError as exc:  # anything else the file system says: not every 3 s
                self._wait(job_id, now, f"job {job_id}: cannot rewrite its files yet: {exc}")
            except QueueError:
                raise  # the database is away: the whole pass waits for the next
            except Exception:  # a bug: said once, with its traceback; the other jobs go on
                if job_id not in self._waiting:
                    log.exception("job %s: rewriting its files with the names failed", job_id)
                self._wait(job_id, now, f"job {job_id}: rewriting its files failed")
        return done

    def _wait(self, job_id: int, now: float, message: str) -> None:
        retry = self._waiting.get(job_id)
        delay = FIRST_RETRY_S if retry is None else min(retry.delay * 2, LAST_RETRY_S)
        if retry is None:
            log.warning("%s (tried again in %g s, then less often)", message, delay)
        self._waiting[job_id] = _Retry(now + delay, delay)


def rewrite_job(names: SpeakerNames, job_id: int) -> bool:
    """Rewrite one job's files with its speakers' names. True once its files are recorded as up
    to date; False when another rename or pass came between (the next pass looks again).
    Unreachable (nothing recorded) when a folder cannot be reached now."""
    outdated = names.outdated_files(job_id)
    if outdated is None:
        return False
    rewrites: list[_Rewrite] = []
    try:
        for output in outdated.outputs:
            rewrite = _stage(outdated, Path(output))
            if rewrite is not None:
                rewrites.append(rewrite)
        recorded = names.files_rewritten(
            job_id,
            outdated.transcript.speaker_names,
            outdated.names_in_files,
            lambda: _publish(rewrites),
        )
    finally:
        _discard(rewrites)
    written = sum(r.temporary is None for r in rewrites)
    if recorded and written:
        log.info("job %s: speaker names written into %s file(s)", job_id, written)
    return recorded


def _stage(outdated: OutdatedFiles, path: Path) -> _Rewrite | None:
    """The file's new text in a temporary beside it; None when there is nothing to change or
    the file is not what the job wrote any more (said once)."""
    fmt = path.suffix.removeprefix(".")
    if fmt not in OUTPUT_FORMATS:
        return None
    labelled = dataclasses.replace(outdated.transcript, speaker_names={})
    options = outdated.options
    before = rendered(labelled.with_speaker_names(outdated.names_in_files), fmt, options).encode()
    after = rendered(outdated.transcript.named(), fmt, options).encode()
    if before == after:
        return None
    folder_fd = _open_folder(path.parent)
    if folder_fd is None:
        _keeps(outdated.job_id, path, "its folder is now a link")
        return None
    try:
        _remove_stale_rewrites(folder_fd)
        try:
            seen, content = _read(path.name, folder_fd, {len(before), len(after)})
        except FileNotFoundError:
            _keeps(outdated.job_id, path, "it was removed")
            return None
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.EISDIR, errno.ENXIO, errno.EINVAL):
                raise Unreachable(f"{printable(str(path))!r}: {exc.strerror or exc}") from exc
            _keeps(outdated.job_id, path, "it is not a plain file any more")
            return None
        if seen is None or content not in (before, after):
            _keeps(outdated.job_id, path, "it was changed since the job wrote it")
            return None
        if content == after:
            return None  # written already (a pass that published, then could not record it)
        rewrite = _Rewrite(outdated.job_id, path, folder_fd, seen)
        folder_fd = -1  # the rewrite holds it now
        rewrite.temporary = _write_temporary(rewrite.folder_fd, after, seen.mode)
        return rewrite
    finally:
        if folder_fd >= 0:
            os.close(folder_fd)


def _open_folder(folder: Path) -> int | None:
    """The folder, reached without links; None when a link is in the way now (for good);
    Unreachable when it cannot be reached (gone for now, an I/O error, no permission)."""
    try:
        return open_planned_folder(folder, create=False)
    except OSError as exc:
        if exc.errno == errno.ELOOP or isinstance(exc, NotADirectoryError):
            return None
        raise Unreachable(f"{printable(str(folder))!r}: {exc.strerror or exc}") from exc


def _keeps(job_id: int, path: Path, why: str) -> None:
    log.warning("job %s: %r keeps the names it shows: %s", job_id, printable(str(path)), why)


def _read(name: str, folder_fd: int, sizes: set[int]) -> tuple[_Seen | None, bytes]:
    """The file as found and its content, when it is a plain file of this service's user with
    one of the sizes expected (a large file swapped in is not read); (None, b"") for a file
    that is not ours. OSError for a link, a fifo or anything but a plain file."""
    fd = os.open(name, _READ_FLAGS, dir_fd=folder_fd)
    with os.fdopen(fd, "rb") as file:
        found = os.fstat(file.fileno())
        if not stat.S_ISREG(found.st_mode):
            raise OSError(errno.ENXIO, "not a plain file", name)
        if found.st_uid != os.geteuid() or found.st_size not in sizes:
            return None, b""
        return _Seen.of(found), file.read(found.st_size + 1)


def _write_temporary(folder_fd: int, content: bytes, mode: int) -> str:
    temporary = f"{REWRITE_PREFIX}{secrets.token_hex(6)}{TEMPORARY_SUFFIX}"
    fd = os.open(temporary, _NEW_FILE_FLAGS, 0o600, dir_fd=folder_fd)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(content)
            file.flush()
            # The permissions the file had, never a set-id bit someone put there.
            os.fchmod(file.fileno(), stat.S_IMODE(mode) & 0o777)
            os.fsync(file.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=folder_fd)
        raise
    return temporary


def _publish(rewrites: list[_Rewrite]) -> bool:
    """Each temporary in place of its file, if that is still the file compared. False when one
    was not: changed meanwhile (by a person, or another instance's pass), or the rename failed:
    the record waits for the next pass, which compares again."""
    placed_all = True
    for rewrite in rewrites:
        if rewrite.temporary is None:
            continue
        name = rewrite.path.name
        try:
            now = os.stat(name, dir_fd=rewrite.folder_fd, follow_symlinks=False)
        except FileNotFoundError:
            now = None
        if now is None or _Seen.of(now) != rewrite.seen:
            placed_all = False
            continue
        try:
            os.replace(
                rewrite.temporary, name, src_dir_fd=rewrite.folder_fd, dst_dir_fd=rewrite.folder_fd
            )
        except OSError as exc:
            log.warning(
                "job %s: cannot write the names into %r: %s",
                rewrite.job_id,
                printable(str(rewrite.path)),
                exc.strerror or exc,
            )
            placed_all = False
            continue
        rewrite.temporary = None
        with contextlib.suppress(OSError):
            os.fsync(rewrite.folder_fd)
    return placed_all


def _discard(rewrites: list[_Rewrite]) -> None:
    """Temporaries not published removed, folders closed."""
    for rewrite in rewrites:
        if rewrite.temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(rewrite.temporary, dir_fd=rewrite.folder_fd)
        os.close(rewrite.folder_fd)


def _remove_stale_rewrites(folder_fd: int) -> None:
    """Temporaries a killed pass left in this folder (plain files, an hour old)."""
    limit = time.time() - STALE_TEMPORARY_S
    for entry in os.listdir(folder_fd):
        if not (entry.startswith(REWRITE_PREFIX) and entry.endswith(TEMPORARY_SUFFIX)):
            continue
        with contextlib.suppress(OSError):
            found = os.stat(entry, dir_fd=folder_fd, follow_symlinks=False)
            if stat.S_ISREG(found.st_mode) and found.st_mtime < limit:
                os.unlink(entry, dir_fd=folder_fd)


def rewrite_renamed(db: StoreBase) -> list[int]:
    """One pass without memory of earlier ones (tests, scripts)."""
    return RenamedFiles(db).rewrite_renamed_files()
