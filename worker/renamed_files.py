"""The files a job published, rewritten when its speakers are renamed ("Speaker 1" becomes Ada).

A rename marks the transcript's files outdated (db/speaker_names.py); an instance with the work
or watch role, which can reach them, rewrites them here. A file is rewritten only while it holds
exactly what the job wrote, rendered with the names it shows now: one edited by hand, replaced
by another job's, turned into a link or gone keeps what it has (and is said so in the log). The
new text goes to a temporary in the same folder (reached without following links, as staging
does), and replaces the file by a rename while the transcript's row is locked, only if the file
is still the one compared. Running it twice, or after a crash half-way, changes nothing more.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from whisper_transcriber.db.speaker_names import OutdatedFiles, SpeakerNames
from whisper_transcriber.db.store_base import StoreBase
from whisper_transcriber.db.values import OUTPUT_FORMATS
from whisper_transcriber.worker.outputs import render
from whisper_transcriber.worker.staging import open_planned_folder, temporary_name

# Jobs looked at per pass: a burst of renames is worked through a batch at a time.
BATCH = 20
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

log = logging.getLogger(__name__)


@dataclass
class _Rewrite:
    """One file's new text, staged beside it, and the file as it was when compared."""

    path: Path
    folder_fd: int
    temporary: str | None
    seen: tuple[int, int, int, int]  # device, inode, mtime, mode: the file compared, replaced


def rewrite_renamed(db: StoreBase, batch: int = BATCH) -> list[int]:
    """Rewrite the files of jobs whose speakers were renamed since; the jobs done."""
    names = SpeakerNames(db)
    done = []
    for job_id in names.outdated(batch):
        if rewrite_job(names, job_id):
            done.append(job_id)
    return done


def rewrite_job(names: SpeakerNames, job_id: int) -> bool:
    """Rewrite one job's files with its speakers' names; False when renamed again meanwhile
    (the next pass takes the newer names) or when there was nothing to do."""
    outdated = names.outdated_files(job_id)
    if outdated is None:
        return False
    given = dict(outdated.transcript.speaker_names)
    rewrites: list[_Rewrite] = []
    try:
        for output in outdated.outputs:
            rewrite = _stage(outdated, Path(output))
            if rewrite is not None:
                rewrites.append(rewrite)
        published = names.files_rewritten(job_id, given, lambda: _publish(rewrites))
    finally:
        _discard(rewrites)
    if published:
        log.info(
            "job %s: speaker names written into %s file(s)",
            job_id,
            sum(r.temporary is None for r in rewrites),
        )
    return published


def _stage(outdated: OutdatedFiles, path: Path) -> _Rewrite | None:
    """The file's new text in a temporary beside it, or None: nothing to change, or the file is
    not what the job wrote any more."""
    fmt = path.suffix.removeprefix(".")
    if fmt not in OUTPUT_FORMATS:
        return None
    labelled = dataclasses.replace(outdated.transcript, speaker_names={})
    before = render(labelled.with_speaker_names(outdated.names_in_files), fmt).encode()
    after = render(outdated.transcript.named(), fmt).encode()
    if before == after:
        return None
    try:
        folder_fd = open_planned_folder(path.parent, create=False)
    except OSError as exc:
        log.warning("job %s: %s keeps its speaker labels: %s", outdated.job_id, path, exc)
        return None
    try:
        seen, content = _read(path.name, folder_fd, {len(before), len(after)})
        if content == after:
            os.close(folder_fd)
            return None  # written already (a pass that published, then could not record it)
        if content != before:
            log.warning(
                "job %s: %s keeps its speaker labels: it was changed since the job wrote it",
                outdated.job_id,
                path,
            )
            os.close(folder_fd)
            return None
        rewrite = _Rewrite(path, folder_fd, None, seen)
        rewrite.temporary = _write_temporary(
            folder_fd, Path(outdated.source_path), after, stat.S_IMODE(seen[3])
        )
        return rewrite
    except OSError as exc:
        os.close(folder_fd)
        log.warning("job %s: %s keeps its speaker labels: %s", outdated.job_id, path, exc)
        return None


def _read(name: str, folder_fd: int, sizes: set[int]) -> tuple[tuple[int, int, int, int], bytes]:
    """The file's identity, and its content when it has one of the sizes expected (a large file
    swapped in is not read); OSError for a link, a fifo or anything but a plain file."""
    fd = os.open(name, _READ_FLAGS, dir_fd=folder_fd)
    with os.fdopen(fd, "rb") as file:
        found = os.fstat(file.fileno())
        if not stat.S_ISREG(found.st_mode):
            raise OSError(f"{name} is not a plain file")
        seen = (found.st_dev, found.st_ino, found.st_mtime_ns, found.st_mode)
        if found.st_size not in sizes:
            return seen, b""
        return seen, file.read(found.st_size + 1)


def _write_temporary(folder_fd: int, source: Path, content: bytes, mode: int) -> str:
    temporary = temporary_name(source)  # found by remove_stale_temporaries if this is killed
    fd = os.open(temporary, _NEW_FILE_FLAGS, 0o600, dir_fd=folder_fd)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(content)
            file.flush()
            os.fchmod(file.fileno(), mode)  # the mode the file had
            os.fsync(file.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=folder_fd)
        raise
    return temporary


def _publish(rewrites: list[_Rewrite]) -> None:
    """Each temporary in place of its file, if that is still the file compared."""
    for rewrite in rewrites:
        if rewrite.temporary is None:
            continue
        name = rewrite.path.name
        try:
            now = os.stat(name, dir_fd=rewrite.folder_fd, follow_symlinks=False)
        except FileNotFoundError:
            now = None
        if now is None or (now.st_dev, now.st_ino, now.st_mtime_ns, now.st_mode) != rewrite.seen:
            log.warning("%s keeps its speaker labels: it was changed meanwhile", rewrite.path)
            continue
        os.replace(
            rewrite.temporary, name, src_dir_fd=rewrite.folder_fd, dst_dir_fd=rewrite.folder_fd
        )
        rewrite.temporary = None
        with contextlib.suppress(OSError):
            os.fsync(rewrite.folder_fd)


def _discard(rewrites: list[_Rewrite]) -> None:
    """Temporaries not published removed, folders closed."""
    for rewrite in rewrites:
        if rewrite.temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(rewrite.temporary, dir_fd=rewrite.folder_fd)
        os.close(rewrite.folder_fd)
