"""Sidecar subtitles as Jellyfin, Plex and Emby find them: "Movie (2020).en.srt" beside the video."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Collection, Sequence
from pathlib import Path

from whisper_transcriber.worker.media_types import MEDIA_EXTENSIONS

# Subtitle files media servers read from beside a video.
SUBTITLE_EXTENSIONS = frozenset({".srt", ".vtt", ".ass", ".ssa", ".sub", ".smi"})
# Words media servers allow between the language and the extension: "Movie.en.forced.srt".
SUBTITLE_FLAGS = frozenset({"forced", "default", "sdh", "cc", "hi", "foreign"})


# Whisper's codes that are not ISO 639 (Javanese is jv).
WHISPER_CODES = {"jw": "jv"}


def subtitle_language(detected_or_given: str, task: str) -> str:
    """The language of what we write: translation is always into English."""
    return "en" if task == "translate" else detected_or_given


def language_name(code: str) -> str:
    """The language's English name in lower case ("en" -> "english"); the code if unknown."""
    import pycountry

    iso = WHISPER_CODES.get(code.lower(), code.lower())
    language = pycountry.languages.get(alpha_2=iso) or pycountry.languages.get(alpha_3=iso)
    return language.name.lower() if language is not None else code


def language_names(code: str) -> frozenset[str]:
    """Every spelling of a language a sidecar name may use: en, eng, english (de: deu, ger)."""
    import pycountry

    code = code.lower()
    names = {code}
    code = WHISPER_CODES.get(code, code)
    names.add(code)
    language = pycountry.languages.get(alpha_2=code) or pycountry.languages.get(alpha_3=code)
    if language is not None:
        for attribute in ("alpha_2", "alpha_3", "bibliographic", "name"):
            value = getattr(language, attribute, None)
            if value:
                names.add(value.lower())
    return frozenset(names)


def existing_subtitle(
    source: Path, language: str, output_dir: Path | None = None, ignore: Collection[str] = ()
) -> Path | None:
    """A subtitle for this video in this language beside it (or in output_dir), if any, other
    than the paths in ignore (the video's own earlier outputs, which a new run replaces).

    Matches "Movie.en.srt", "Movie.eng.forced.srt", "Movie.pt-BR.srt" (region tags count as
    their language) and "Movie.English.srt"."""
    wanted = language_names(language)
    folders = (
        [source.parent] if output_dir in (None, source.parent) else [source.parent, output_dir]
    )
    prefix = source.stem + "."
    for folder in folders:
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name
                if not name.startswith(prefix):
                    continue
                tags = name[len(prefix) :].lower().split(".")
                if len(tags) < 2 or "." + tags[-1] not in SUBTITLE_EXTENSIONS:
                    continue
                language_tag, *flags = tags[:-1]
                base = re.split(r"[-_]", language_tag, maxsplit=1)[0]
                ours = str(folder / name) in ignore
                if base in wanted and all(flag in SUBTITLE_FLAGS for flag in flags) and not ours:
                    return folder / name
    return None


def same_name_videos(video: Path, folder: Path) -> list[str]:
    """The other media files in folder with the video's stem (Movie.mkv and Movie.mp4): media
    servers give them the same sidecars."""
    names = []
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            other = Path(entry.name)
            if (
                entry.name != video.name
                and other.stem == video.stem
                and other.suffix.lower() in MEDIA_EXTENSIONS
            ):
                names.append(entry.name)
    return sorted(names)


def sharing(videos: Sequence[str]) -> str:
    """ " (Movie.mkv has the same name)", or nothing when no other video has it."""
    if not videos:
        return ""
    return f" ({', '.join(videos)} {'has' if len(videos) == 1 else 'have'} the same name)"


def withheld_note(held: Sequence[Path], videos: Sequence[str]) -> str:
    """The note of a job whose sidecar names other files hold (those files stay)."""
    names = ", ".join(path.name for path in held)
    verb = "exists" if len(held) == 1 else "exist"
    return (
        f"not written: {names} already {verb}, not made for this video{sharing(videos)}; "
        "the transcript is in the database"
    )
