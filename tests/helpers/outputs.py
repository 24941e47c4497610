"""What jobs left in a folder: their transcripts (one set per source, no more), and no temporaries."""

from __future__ import annotations

from pathlib import Path

FORMATS = ("txt", "srt", "vtt", "json", "tsv")


def temporaries(folder: Path) -> list[Path]:
    """Half-written transcripts (".wt-SOURCETAG-RANDOM.tmp") anywhere under folder."""
    return [path for path in folder.rglob(".*.tmp")]


def transcript_files(source: Path, folder: Path | None = None) -> list[str]:
    """The transcripts written for source (beside it, or in folder), by name."""
    where = folder or source.parent
    return sorted(
        path.name
        for path in where.iterdir()
        if path.stem == source.stem and path.suffix.lstrip(".") in FORMATS
    )


def one_set_of_transcripts(source: Path, folder: Path | None = None) -> bool:
    return transcript_files(source, folder) == sorted(f"{source.stem}.{fmt}" for fmt in FORMATS)
