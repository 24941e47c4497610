"""The folders a job may read: checked when a file is used, not only when its job was made.

Whoever writes into an inbox can put a symbolic link there, or swap a file or folder for one after
its job was queued. So a source is opened first and the open file is judged (its real path, its
type, its size and mtime), and the model reads that same open file through /proc/self/fd: a link
swapped in after the check cannot redirect the read.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from whisper_transcriber.db.values import CLI_ORIGIN, JobRecord

# The command line is the operator's own hand: its files may live anywhere.
TRUSTED_ORIGINS = frozenset({CLI_ORIGIN})
# How a refusal for a file outside the allowed folders ends (service/client.py recognises it).
OUTSIDE_ALLOWED_FOLDERS = "is outside the allowed folders"
_PROC_FD = Path("/proc/self/fd")


class SourceRefused(Exception):
    """The source is not a file this job may read (outside the allowed folders, a link swapped
    in, not a regular file); the same file would be refused again, so no retry."""


@dataclass(frozen=True)
class LinkEscape:
    """A symbolic link inside an inbox that leads out of the allowed folders."""

    link: Path
    points_to: str  # what the link says, as written
    resolved: Path

    @property
    def reason(self) -> str:
        return (
            f"refused: {self.link} is a symbolic link to {self.points_to} ({self.resolved}), "
            "outside the allowed folders; the operator can allow its target's folder with "
            "the link_roots setting"
        )


@dataclass(frozen=True)
class Confinement:
    """Resolved folders whose files jobs may read: the inboxes (with their done and failed
    folders), the uploads folder, allowed_roots and link_roots."""

    roots: tuple[Path, ...]

    @classmethod
    def of(cls, folders: Iterable[str | os.PathLike[str]]) -> Confinement:
        resolved = {Path(folder).expanduser().resolve() for folder in folders}
        return cls(tuple(sorted(resolved)))

    def allows(self, path: str | os.PathLike[str]) -> bool:
        """Whether a path, once every link in it is followed, lies inside a root."""
        real = Path(os.path.realpath(path))
        return any(real == root or real.is_relative_to(root) for root in self.roots)

    def link_escape(self, path: Path, inbox_root: Path) -> LinkEscape | None:
        """The first link between inbox_root and path (the file itself or a folder on the way)
        whose target leaves the allowed folders; None when none does."""
        if self.allows(path):
            return None
        current = inbox_root
        for part in path.relative_to(inbox_root).parts:
            current = current / part
            if current.is_symlink():
                resolved = Path(os.path.realpath(current))
                if not self.allows(resolved):
                    return LinkEscape(current, os.readlink(current), resolved)
        return None


def open_confined(path: str, confinement: Confinement, *, trusted: bool) -> int:
    """A descriptor of path, opened and judged: a regular file, reached through no link that
    appeared after path was resolved, inside the allowed folders (unless trusted). The caller
    closes it. SourceRefused, with a reason a person can act on, otherwise (gone, unreadable)."""
    # Judged by name first, so that a link out is not even opened; then again on the open file,
    # which no swap between the two looks can fool.
    _judge(path, os.path.realpath(path), confinement, trusted=trusted)
    try:
        # O_NONBLOCK: a FIFO named talk.wav must not hang the worker on open.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise SourceRefused(open_error_reason(exc, path)) from exc
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise SourceRefused(f"not a file but a directory: {path}")
        if not stat.S_ISREG(mode):
            raise SourceRefused(f"not a regular file (a pipe, socket or device): {path}")
        if _PROC_FD.is_dir():
            _judge(path, os.readlink(readable_path(fd)), confinement, trusted=trusted)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _judge(path: str, real: str, confinement: Confinement, *, trusted: bool) -> None:
    if real != path:
        # Job paths are stored resolved: a link appeared since.
        raise SourceRefused(
            f"refused: {path} now leads to {real} (a symbolic link was put in its place "
            "or in a folder on its way)"
        )
    if not trusted and not confinement.allows(real):
        raise SourceRefused(f"refused: {real} {OUTSIDE_ALLOWED_FOLDERS}")


def readable_path(fd: int) -> str:
    """A path that opens exactly this descriptor's file, whatever happens to its name."""
    return str(_PROC_FD / str(fd)) if _PROC_FD.is_dir() else ""


@contextlib.contextmanager
def opened_source(job: JobRecord, confinement: Confinement) -> Iterator[tuple[str, os.stat_result]]:
    """The job's source, opened and judged (open_confined); yields a path that reads exactly
    the open file, and that file's stat (for the caller's check that it is still the version
    queued)."""
    if job.source_size < 0 and not os.path.lexists(job.source_path):
        raise SourceRefused(f"file not found: {job.source_path}")  # it never was there
    fd = open_confined(job.source_path, confinement, trusted=job.origin in TRUSTED_ORIGINS)
    try:
        yield readable_path(fd) or job.source_path, os.fstat(fd)
    finally:
        os.close(fd)


def open_error_reason(exc: OSError, path: str) -> str:
    """Words for an OSError from opening a source."""
    if exc.errno == errno.ENOENT:
        return f"file not found (deleted or moved before its job ran): {path}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied: {path}"
    if exc.errno == errno.ELOOP:
        return f"refused: {path} is a loop of symbolic links"
    return f"cannot open {path}: {exc.strerror or exc}"
