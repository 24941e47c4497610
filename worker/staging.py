"""Writing transcripts: only into the folder the job planned, never over a file that is not ours.

Files are first written to hidden temporary names in their target folder (fsynced), and only made
visible by ``StagedOutputs.publish``, a rename per file: a reader never sees a half-written
transcript, and a failed job leaves nothing behind.

The target folder was resolved when the job was planned (no links in its path). It is reached
from ``/`` one component at a time without following links, and held open, so that a folder
swapped for a symbolic link between planning and publishing (at any depth) fails the attempt
instead of steering the files elsewhere. At publish time the path is walked again and must still
lead to the very folder the temporaries are in.

A file already at a final name is replaced only if an earlier job of the same source wrote it
(``ours``), keeping its mode; any other file there (the user's own notes, another source's
transcript, a link) stays, and the transcript takes the next free name: "talk (2).txt".
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from worker.outputs import output_paths, render
from worker.transcript import Transcript

_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# Hard links unsupported by the file system (FAT, some SMB mounts): fall back to check-and-rename.
_NO_HARD_LINKS = frozenset(
    {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV}
)
_MAX_FREE_NAME_TRIES = 1000


class OutputFolderChanged(OSError):
    """The planned output folder is not reachable without following a link any more."""

    def __init__(self, folder: Path, detail: str) -> None:
        super().__init__(errno.ELOOP, detail, str(folder))
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


def open_planned_folder(folder: Path, *, create: bool) -> int:
    """A descriptor of folder, walked from / without following any link (made when create)."""
    folder = Path(os.path.abspath(folder))
    fd = os.open("/", _FOLDER_FLAGS)
    walked = Path("/")
    try:
        for part in folder.parts[1:]:
            walked = walked / part
            try:
                inner = os.open(part, _FOLDER_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, dir_fd=fd)
                inner = os.open(part, _FOLDER_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(part, fd):
                    raise OutputFolderChanged(
                        folder,
                        f"{walked} is now a symbolic link (to {os.readlink(part, dir_fd=fd)}); "
                        "refused to write through it, nothing was written",
                    ) from exc
                raise
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def _is_link(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


@dataclass
class StagedOutputs:
    """Outputs written to temporary files in their (open) target folder, not yet visible."""

    folder: Path
    targets: dict[str, Path]
    """Format -> wanted final path, in format order."""
    temporaries: dict[str, Path]
    """Format -> temporary file still on disk (emptied by publish and discard)."""
    ours: frozenset[str] = frozenset()
    """Paths earlier jobs of the same source wrote: these alone may be replaced."""
    _folder_fd: int | None = field(default=None, repr=False)
    _finished: bool = field(default=False, init=False, repr=False)

    def publish(self) -> list[Path]:
        """Moves each temporary to its final name (atomically, one file at a time).

        Returns the final paths in format order (a taken name gives way to "name (2).ext").
        OutputFolderChanged when the planned folder no longer leads to where the temporaries
        are. If a move fails, the temporaries not yet moved are removed and the error is
        raised; files already moved stay published."""
        if self._finished or self._folder_fd is None:
            raise RuntimeError("outputs were already published or discarded")
        fd = self._folder_fd
        published = []
        try:
            self._check_folder_unchanged(fd)
            for fmt, wanted in self.targets.items():
                temporary = self.temporaries[fmt].name
                published.append(self.folder / self._place(fd, temporary, wanted.name))
                del self.temporaries[fmt]
            with contextlib.suppress(OSError):
                os.fsync(fd)
        finally:
            self.discard()
        return published

    def discard(self) -> None:
        """Removes the temporaries not yet published; safe to call more than once."""
        self._finished = True
        fd, self._folder_fd = self._folder_fd, None
        while self.temporaries:
            _, temporary = self.temporaries.popitem()
            if fd is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary.name, dir_fd=fd)
        if fd is not None:
            os.close(fd)

    def _check_folder_unchanged(self, fd: int) -> None:
        again = open_planned_folder(self.folder, create=False)
        try:
            now, staged = os.fstat(again), os.fstat(fd)
        finally:
            os.close(again)
        if (now.st_dev, now.st_ino) != (staged.st_dev, staged.st_ino):
            raise OutputFolderChanged(
                self.folder,
                f"{self.folder} was replaced by another folder while the job ran; "
                "nothing was written",
            )

    def _place(self, fd: int, temporary: str, name: str) -> str:
        """Rename the temporary to name, or to the first of "name (2)", ... that is free or
        ours; the name it got."""
        for candidate in _free_names(name):
            existing = _lstat(candidate, fd)
            if existing is None:
                if _rename_without_replacing(fd, temporary, candidate):
                    return candidate
            elif stat.S_ISREG(existing.st_mode) and self._is_ours(candidate):
                os.chmod(temporary, stat.S_IMODE(existing.st_mode), dir_fd=fd)
                os.replace(temporary, candidate, src_dir_fd=fd, dst_dir_fd=fd)
                return candidate
        raise FileExistsError(errno.EEXIST, "no free name", str(self.folder / name))

    def _is_ours(self, name: str) -> bool:
        return str(self.folder / name) in self.ours


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _free_names(name: str) -> Iterator[str]:
    yield name
    path = Path(name)
    for number in range(2, _MAX_FREE_NAME_TRIES):
        yield f"{path.stem} ({number}){path.suffix}"


def _rename_without_replacing(fd: int, temporary: str, name: str) -> bool:
    """Give the temporary this name unless something has it; False when taken. A hard link
    fails on an existing name, atomically; where links are unsupported, look, then rename."""
    try:
        os.link(temporary, name, src_dir_fd=fd, dst_dir_fd=fd, follow_symlinks=False)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        if _lstat(name, fd) is not None:
            return False
        os.rename(temporary, name, src_dir_fd=fd, dst_dir_fd=fd)
        return True
    os.unlink(temporary, dir_fd=fd)
    return True


def stage_outputs(
    transcript: Transcript,
    source: Path,
    formats: Sequence[str],
    output_dir: Path | None,
    language_tag: str | None = None,
    ours: Collection[str] = (),
) -> StagedOutputs:
    """Renders each format and writes it to a temporary file in its target folder.

    Creates output_dir (with parents) if needed, following no link on the way. On any error the
    temporaries already written are removed and the error is raised. Call ``publish`` on the
    result to make the files visible. ours: paths earlier jobs of this source wrote."""
    targets = output_paths(source, formats, output_dir, language_tag)
    texts = {fmt: render(transcript, fmt) for fmt in targets}
    folder = source.parent if output_dir is None else output_dir
    fd = open_planned_folder(folder, create=output_dir is not None)
    staged = StagedOutputs(
        folder=Path(os.path.abspath(folder)),
        targets=targets,
        temporaries={},
        ours=frozenset(ours),
        _folder_fd=fd,
    )
    try:
        for fmt, final in targets.items():
            name = f".{final.name}.{secrets.token_hex(4)}.tmp"
            # 0o666 less the umask, as a plain open() would make it.
            handle = os.open(name, _NEW_FILE_FLAGS, 0o666, dir_fd=fd)
            staged.temporaries[fmt] = staged.folder / name
            with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as file:
                file.write(texts[fmt])
                file.flush()
                os.fsync(file.fileno())
    except BaseException:
        staged.discard()
        raise
    return staged


def remove_stale_temporaries(
    source: Path, formats: Sequence[str], output_dir: Path | None, language_tagged: bool = False
) -> list[Path]:
    """Removes temporaries a killed worker left for this source's outputs; returns what it removed.

    language_tagged: the outputs carry a language tag, whichever it was ("talk.en.srt")."""
    removed: list[Path] = []
    folder = source.parent if output_dir is None else output_dir
    try:
        fd = open_planned_folder(folder, create=False)
    except OSError:
        return removed  # gone, or a link now: nothing of ours to tidy there
    try:
        names = os.listdir(fd)
        for final in output_paths(source, formats, output_dir).values():
            # stage_outputs names them "." + final name + "." + random hex + ".tmp"
            name = (
                re.escape(final.stem)
                + (r"\.[^.]+" if language_tagged else "")
                + re.escape(final.suffix)
            )
            pattern = re.compile(rf"\.{name}\.[^.]+\.tmp")
            for entry in names:
                if pattern.fullmatch(entry):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry, dir_fd=fd)
                        removed.append(final.parent / entry)
    finally:
        os.close(fd)
    return removed
