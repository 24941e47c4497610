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
transcript, a link) stays, and the job's outputs all take the same next number: "talk (2).txt"
and "talk (2).srt", never a mix. The number is the same on every run of a source: the one its
earlier run got, while its names are still free or its own. A job whose original moves to done/
skips the numbers whose name is taken there, so that "done/talk (2).wav" goes with
"talk (2).txt" and an older "done/talk.wav" keeps its "talk.txt". Sidecars (named with a
language tag, for media servers) are never numbered: a format whose name another file holds is
not written (``withheld``), and the job says so in its note.

Temporaries have short fixed-length names, ".wt-<source tag>-<random>.tmp", whatever the length
of the final name: a name up to the file system's limit works. The source tag lets
``remove_stale_temporaries`` find what a killed worker left for a source, and only that.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import stat
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from whisper_transcriber.db.transcript import Transcript
from whisper_transcriber.db.values import JobOptions
from whisper_transcriber.worker.names import name_bytes, name_max, number_of, numbered, shown
from whisper_transcriber.worker.outputs import (
    OutputNameError,
    check_name_lengths,
    output_paths,
    render,
    rendered,
)

_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# Hard links unsupported by the file system (FAT, some SMB mounts): fall back to check-and-rename.
_NO_HARD_LINKS = frozenset(
    {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV}
)
_MAX_FREE_NAME_TRIES = 1000
TEMPORARY_PREFIX = ".wt-"
TEMPORARY_SUFFIX = ".tmp"
# 48 bits of the source path's SHA-256: ".wt-" + 12 + "-" + 8 + ".tmp" is 29 bytes in all.
SOURCE_TAG_HEX = 12


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
    numbered: bool = True
    """Whether a taken name makes the outputs numbered (not for sidecars)."""
    companion: Path | None = None
    """Where the original goes once done (done/talk.wav): numbers taken there are skipped."""
    name_max: int = 255
    """The longest name the folder's file system allows, in bytes."""
    withheld: dict[str, Path] = field(default_factory=dict)
    """Format -> its name, held by a file that is not the source's own: not written (sidecars)."""
    _folder_fd: int | None = field(default=None, repr=False)
    _finished: bool = field(default=False, init=False, repr=False)

    def publish(self) -> list[Path]:
        """Moves each temporary to its final name (atomically, one file at a time).

        Returns the final paths in format order: the planned names, or all of them with the
        same number when one is taken (see the module's docstring); withheld formats are left
        out. OutputNameError when the numbered names would be too long for the file system;
        OutputFolderChanged when the planned folder no longer leads to where the temporaries
        are. If a move fails, the temporaries not yet moved are removed and the error is
        raised; files already moved stay published."""
        if self._finished or self._folder_fd is None:
            raise RuntimeError("outputs were already published or discarded")
        fd = self._folder_fd
        published = []
        try:
            self._check_folder_unchanged(fd)
            number = self._number(fd) if self.numbered else 1
            for fmt, wanted in self.targets.items():
                if fmt in self.withheld:
                    continue
                temporary = self.temporaries[fmt].name
                published.append(self.folder / self._place(fd, temporary, wanted.name, number))
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

    def _number(self, fd: int) -> int:
        """The number all outputs take: the first whose names are all free or this source's
        (and whose original's place in done/ is free), trying the numbers of this source's
        earlier outputs first."""
        plain = [target.name for target in self.targets.values()]
        earlier: set[int] = {
            found
            for path in map(Path, self.ours)
            if path.parent == self.folder
            for name in plain
            if (found := number_of(path.name, name)) is not None
        }
        candidates: list[int] = [*sorted(earlier), *range(1, _MAX_FREE_NAME_TRIES)]
        for number in candidates:
            names = [numbered(name, number) for name in plain]
            for name, wanted in zip(names, plain, strict=True):
                self._check_length(name, wanted)
            if self._companion_taken(number):
                continue
            if all(self._free_or_ours(fd, name) for name in names):
                return number
        raise FileExistsError(errno.EEXIST, "no free name", str(self.folder / plain[0]))

    def _check_length(self, name: str, wanted: str) -> None:
        if name_bytes(name) > self.name_max:
            raise OutputNameError(
                f"{shown(wanted)} in {self.folder} belongs to another file, and the next free "
                f"name, {shown(name)}, would be {name_bytes(name)} bytes long, more than the "
                f"{self.name_max} allowed there: give the source a shorter name"
            )

    def _companion_taken(self, number: int) -> bool:
        if self.companion is None:
            return False
        return os.path.lexists(self.companion.with_name(numbered(self.companion.name, number)))

    def _free_or_ours(self, fd: int, name: str) -> bool:
        existing = _lstat(name, fd)
        return existing is None or (stat.S_ISREG(existing.st_mode) and self._is_ours(name))

    def _place(self, fd: int, temporary: str, name: str, number: int) -> str:
        """Rename the temporary to name with the chosen number; the name it got. Should another
        file take that name meanwhile, the next free number for this file alone (sidecars: the
        error)."""
        for n in range(number, _MAX_FREE_NAME_TRIES):
            candidate = numbered(name, n)
            self._check_length(candidate, name)
            existing = _lstat(candidate, fd)
            if existing is None:
                if _rename_without_replacing(fd, temporary, candidate):
                    return candidate
            elif stat.S_ISREG(existing.st_mode) and self._is_ours(candidate):
                os.chmod(temporary, stat.S_IMODE(existing.st_mode), dir_fd=fd)
                os.replace(temporary, candidate, src_dir_fd=fd, dst_dir_fd=fd)
                return candidate
            if not self.numbered:
                break
        raise FileExistsError(
            errno.EEXIST,
            f"another file took the name {numbered(name, number)} while the job ran",
            str(self.folder / numbered(name, number)),
        )

    def _is_ours(self, name: str) -> bool:
        return str(self.folder / name) in self.ours


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def source_tag(source: Path) -> str:
    """What a source's temporaries are known by: a digest of its path, of fixed length."""
    digest = hashlib.sha256(os.fsencode(os.path.abspath(source))).hexdigest()
    return digest[:SOURCE_TAG_HEX]


def temporary_name(source: Path) -> str:
    return f"{TEMPORARY_PREFIX}{source_tag(source)}-{secrets.token_hex(4)}{TEMPORARY_SUFFIX}"


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
    *,
    name: str | None = None,
    companion: Path | None = None,
    options: JobOptions | None = None,
) -> StagedOutputs:
    """Renders each format and writes it to a temporary file in its target folder.

    Creates output_dir (with parents) if needed, following no link on the way. On any error the
    temporaries already written are removed and the error is raised: OutputNameError for a
    name the file system cannot hold or one that would overwrite the source. Call ``publish``
    on the result to make the files visible. ours: paths earlier jobs of this source wrote;
    name: the file name outputs are named after, when not the source's (a link's); companion:
    where the original goes once done; options: the job's, for its subtitle rules and words
    (without them, each format as `render` makes it). With a language tag (sidecars), a format
    whose name another file holds is withheld: nothing is written for it."""
    targets = output_paths(source, formats, output_dir, language_tag, name=name)
    folder = source.parent if output_dir is None else output_dir
    fd = open_planned_folder(folder, create=output_dir is not None)
    staged = StagedOutputs(
        folder=Path(os.path.abspath(folder)),
        targets=targets,
        temporaries={},
        ours=frozenset(ours),
        numbered=language_tag is None,
        companion=companion,
        name_max=name_max(fd),
        _folder_fd=fd,
    )
    try:
        check_name_lengths(targets, staged.name_max)
        if not staged.numbered:
            for fmt, target in targets.items():
                if not staged._free_or_ours(fd, target.name):
                    staged.withheld[fmt] = staged.folder / target.name
        for fmt in targets:
            if fmt in staged.withheld:
                continue
            text = (
                render(transcript, fmt) if options is None else rendered(transcript, fmt, options)
            )
            temporary = temporary_name(source)
            # 0o666 less the umask, as a plain open() would make it.
            handle = os.open(temporary, _NEW_FILE_FLAGS, 0o666, dir_fd=fd)
            staged.temporaries[fmt] = staged.folder / temporary
            with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as file:
                file.write(text)
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

    Those of any job of the source, found by its tag. formats and language_tagged describe the
    outputs ("talk.en.srt" when tagged, whichever the language) for the longer names that
    versions before the tag used (".talk.txt.RANDOM.tmp"), left over from before an upgrade."""
    removed: list[Path] = []
    folder = source.parent if output_dir is None else output_dir
    try:
        fd = open_planned_folder(folder, create=False)
    except OSError:
        return removed  # gone, or a link now: nothing of ours to tidy there
    try:
        prefix = f"{TEMPORARY_PREFIX}{source_tag(source)}-"
        earlier = _earlier_temporary_names(source, formats, output_dir, language_tagged)
        for entry in os.listdir(fd):
            ours = entry.startswith(prefix) and entry.endswith(TEMPORARY_SUFFIX)
            if not (ours or (earlier is not None and earlier.fullmatch(entry))):
                continue
            # Only plain files: anyone who can write the folder can make a folder or a link of
            # that name, and a cleanup must never stop the service (it runs at start-up too).
            try:
                if not stat.S_ISREG(os.lstat(entry, dir_fd=fd).st_mode):
                    continue
                os.unlink(entry, dir_fd=fd)
            except OSError:
                continue
            removed.append(Path(os.path.abspath(folder)) / entry)
    finally:
        os.close(fd)
    return removed


def _earlier_temporary_names(
    source: Path, formats: Sequence[str], output_dir: Path | None, language_tagged: bool
) -> re.Pattern[str] | None:
    """The names stage_outputs gave temporaries before: "." + final name + "." + hex + ".tmp"."""
    try:
        finals = output_paths(source, formats, output_dir).values()
    except ValueError:
        return None
    names = [
        re.escape(final.stem)
        + (r"\.[a-z]{2,3}" if language_tagged else "")
        + re.escape(final.suffix)
        for final in finals
    ]
    return re.compile(rf"\.(?:{'|'.join(names)})\.[0-9a-f]+\.tmp") if names else None
