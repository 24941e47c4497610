"""The file extensions of the media the decoder (PyAV, as faster-whisper's) reads.

What inboxes take unless configured otherwise (watcher/filters.py, the media_extensions setting)
and what counts as another video beside a sidecar (worker/sidecars.py). Plain data, importing
nothing: the watcher and the settings read it without the decoder."""

from __future__ import annotations

# Containers and codecs that PyAV reads.
MEDIA_EXTENSIONS = frozenset(
    {
        ".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".wma", ".aiff",
        ".aif", ".amr", ".webm", ".mp4", ".m4v", ".mkv", ".mov", ".avi", ".wmv", ".mpg",
        ".mpeg", ".ts", ".3gp",
    }
)  # fmt: skip
