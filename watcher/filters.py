"""Which files in an inbox are media to transcribe, and which are clutter or in-progress copies."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import translate
from pathlib import Path

from whisper_transcriber.worker.media_types import MEDIA_EXTENSIONS

# Partial downloads, editor and OS clutter (macOS, Windows, Synology, QNAP/Samba recycle bins).
IGNORED_PATTERNS = (
    "*.part", "*.tmp", "*.crdownload", "*.partial", "~$*", ".*", "._*", ".DS_Store",
    "Thumbs.db", "@eaDir", "#recycle",
)  # fmt: skip


@dataclass(frozen=True)
class FileFilter:
    """Media extensions to take and name patterns to ignore (files and folders alike)."""

    extensions: frozenset[str] = MEDIA_EXTENSIONS
    ignored: tuple[str, ...] = IGNORED_PATTERNS
    # The patterns as one expression: a rescan asks about every name of a large tree, and one
    # match is several times cheaper than an fnmatch per pattern.
    _ignored_names: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        joined = "|".join(translate(pattern) for pattern in self.ignored) or r"(?!)"
        object.__setattr__(self, "_ignored_names", re.compile(joined))

    @classmethod
    def of(cls, extensions: Iterable[str], ignored: Iterable[str]) -> FileFilter:
        return cls(frozenset(e.lower() for e in extensions), tuple(ignored))

    def ignores_name(self, name: str) -> bool:
        return self._ignored_names.match(name) is not None

    def is_ignored(self, path: Path, root: Path) -> bool:
        """True when the file or any folder between it and the inbox root matches a pattern."""
        try:
            parts = path.relative_to(root).parts
        except ValueError:
            parts = (path.name,)
        return any(self.ignores_name(part) for part in parts)

    def is_media(self, path: Path) -> bool:
        return path.suffix.lower() in self.extensions

    def is_candidate(self, path: Path, root: Path) -> bool:
        return self.is_media(path) and not self.is_ignored(path, root)


DEFAULT_FILTER = FileFilter()


def is_candidate(path: Path, root: Path) -> bool:
    return DEFAULT_FILTER.is_candidate(path, root)
