"""What makes two jobs the same work: one version of a source with one set of effective options.

A version of a file is its resolved path with signals that change whenever its bytes do: size and
mtime (what a rescan compares first, for free) and inode and ctime, which no `cp -p`, `touch -r`
or restore from backup can set back. ctime also moves on a chmod or a new hard link, which leave
the bytes alone; when only inode or ctime differ, a sampled fingerprint of the content decides
(a few small reads, never the whole file), so a permissions fix over a library queues nothing.

An upload has no lasting path (each lands in a folder of its own): its version is a digest of its
whole content, taken while it streamed in, with its file name.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from whisper_transcriber.db.values import OUTPUT_FORMATS, JobOptions

# A value that a version has not recorded: a path that did not exist, or a job from before
# inode and ctime were recorded (migration 0007), which any inode and ctime then match.
UNKNOWN = -1
FINGERPRINT_BLOCK = 16 * 1024
FINGERPRINT_BLOCKS = 4  # at the start, the end, and evenly between
SAMPLED = "sampled:"
CONTENT = "sha256:"
Signals = tuple[int, int, int, int]  # size, mtime_ns, inode, ctime_ns


@dataclass(frozen=True)
class FileVersion:
    path: str  # resolved, symbolic links followed
    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int

    @property
    def exists(self) -> bool:
        return self.size != UNKNOWN

    @property
    def signals(self) -> Signals:
        return (self.size, self.mtime_ns, self.inode, self.ctime_ns)


def version_of_stat(path: str, stat: os.stat_result) -> FileVersion:
    return FileVersion(path, stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns)


def file_version(path: str | os.PathLike[str]) -> FileVersion:
    """The file's current version; a missing path gets UNKNOWN signals (its job then fails)."""
    resolved = str(Path(path).expanduser().resolve())
    try:
        return version_of_stat(resolved, os.stat(resolved))
    except OSError:
        return FileVersion(resolved, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN)


def looks_the_same(size: int, mtime_ns: int, other_size: int, other_mtime_ns: int) -> bool:
    """Whether two machines' files at one path look like the same file: the same size and
    modification time, compared at the coarser of the two clocks' resolutions (a network share
    may keep less than nanoseconds). What POST /transcribe checks for expected_size and
    expected_mtime_ns, so that a client's file is never confused with the server's."""
    if size != other_size:
        return False
    step = max(_resolution(mtime_ns), _resolution(other_mtime_ns))
    return mtime_ns // step == other_mtime_ns // step


def _resolution(ns: int) -> int:
    for step in (10**9, 10**6, 10**3):
        if ns % step == 0:
            return step
    return 1


def is_recorded(recorded: Collection[Signals], found: Signals) -> bool:
    """Whether the file found now is one of the recorded versions; a version recorded without
    inode and ctime (both UNKNOWN) matches any. Two set lookups: a rescan asks this per file."""
    return found in recorded or (found[0], found[1], UNKNOWN, UNKNOWN) in recorded


def sampled_fingerprint(path: str | os.PathLike[str], size: int) -> str | None:
    """A digest of the size and a few blocks spread over the file; None when it cannot be read."""
    digest = hashlib.sha256(str(size).encode())
    if size <= FINGERPRINT_BLOCK * FINGERPRINT_BLOCKS:
        offsets = [0]
        length = size
    else:
        last = size - FINGERPRINT_BLOCK
        offsets = [last * i // (FINGERPRINT_BLOCKS - 1) for i in range(FINGERPRINT_BLOCKS)]
        length = FINGERPRINT_BLOCK
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        for offset in offsets:
            digest.update(os.pread(fd, length, offset))
    except OSError:
        return None
    finally:
        os.close(fd)
    return SAMPLED + digest.hexdigest()


def options_key(options: JobOptions) -> str:
    """The options as a stable digest: only values that differ from the defaults count, so that a
    later version adding an option (with a default) does not make every old job new work."""
    in_one_order = tuple(f for f in OUTPUT_FORMATS if f in options.formats)  # "txt,srt" = "srt,txt"
    given = options.model_copy(update={"formats": in_one_order}).model_dump(
        mode="json", exclude_defaults=True
    )
    return hashlib.sha256(json.dumps(given, sort_keys=True).encode()).hexdigest()


def dedupe_key(*parts: object) -> str:
    """One unique key per piece of work, so that two processes racing to record it make one job."""
    return hashlib.sha256("\0".join(str(part) for part in parts).encode()).hexdigest()


def file_work_key(version: FileVersion, options: str) -> str:
    return dedupe_key("file", version.path, *version.signals, options)


def upload_work_key(content_digest: str, name: str, options: str) -> str:
    return dedupe_key("upload", content_digest, name, options)
