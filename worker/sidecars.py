"""Sidecar subtitles as Jellyfin, Plex and Emby find them: "Movie (2020).en.srt" beside the video."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

# Subtitle files media servers read from beside a video.
SUBTITLE_EXTENSIONS = frozenset({".srt", ".vtt", ".ass", ".ssa", ".sub", ".smi"})
# Words media servers allow between the language and the extension: "Movie.en.forced.srt".
SUBTITLE_FLAGS = frozenset({"forced", "default", "sdh", "cc", "hi", "foreign"})


def language_names(code: str) -> frozenset[str]:
    """Every spelling of a language a sidecar name may use: en, eng, english (de: deu, ger)."""
    import pycountry

    code = code.lower()
    names = {code}
    language = pycountry.languages.get(alpha_2=code) or pycountry.languages.get(alpha_3=code)
    if language is not None:
        for attribute in ("alpha_2", "alpha_3", "bibliographic", "name"):
            value = getattr(language, attribute, None)
            if value:
                names.add(value.lower())
    return frozenset(names)


def existing_subtitle(source: Path, language: str, folder: Path | None = None) -> Path | None:
    """A subtitle for this video in this language, beside it (or in folder), if there is one."""
    wanted = language_names(language)
    folder = folder or source.parent
    prefix = source.stem + "."
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            if not name.startswith(prefix):
                continue
            tags = name[len(prefix) :].lower().split(".")
            if len(tags) < 2 or "." + tags[-1] not in SUBTITLE_EXTENSIONS:
                continue
            words = tags[:-1]
            if words[0] in wanted and all(word in SUBTITLE_FLAGS for word in words[1:]):
                return folder / name
    return None
