"""Which files in an inbox are media to transcribe, and which are clutter or in-progress copies."""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path

# Containers and codecs that PyAV (faster-whisper's decoder) reads.
MEDIA_EXTENSIONS = frozenset(
    {
        ".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".wma", ".aiff",
        ".aif", ".amr", ".webm", ".mp4", ".m4v", ".mkv", ".mov", ".avi", ".wmv", ".mpg",
        ".mpeg", ".ts", ".3gp",
    }
)  # fmt: skip
# Partial downloads, editor and OS clutter (macOS, Windows, Synology, QNAP/Samba recycle bins).
IGNORED_PATTERNS = (
    "*.part", "*.tmp", "*.crdownload", "*.partial", "~$*", ".*", "._*", ".DS_Store",
    "Thumbs.db", "@eaDir", "#recycle",
)  # fmt: skip


def is_ignored(path: Path, root: Path) -> bool:
    """True when the file or any folder between it and the inbox root matches an ignore pattern."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        parts = (path.name,)
    return any(fnmatch(part, pattern) for part in parts for pattern in IGNORED_PATTERNS)


def is_candidate(path: Path, root: Path) -> bool:
    return path.suffix.lower() in MEDIA_EXTENSIONS and not is_ignored(path, root)
