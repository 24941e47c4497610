"""Transcript output formats (txt, srt, vtt, json, tsv) and writing them atomically.

The formats are written by hand rather than through a subtitle library so that we control every
byte: whisper-asr-webservice and Bazarr clients expect exactly what openai-whisper's writers produce
(cue numbering, ``HH:MM:SS,mmm`` timestamps rounded to the millisecond, blank lines between cues,
integer milliseconds in tsv), and a few lines of string formatting are easier to pin with tests
than another dependency's defaults.

Files are first written to hidden temporary names in their target folders (fsynced), and only made
visible by ``StagedOutputs.publish``, an ``os.replace`` per file: a reader never sees a half-written
transcript, and a failed job leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from db.values import OUTPUT_FORMATS
from worker.transcript import Segment, Transcript

FORMATS: tuple[str, ...] = OUTPUT_FORMATS


def _milliseconds(seconds: float) -> int:
    if seconds < 0:
        raise ValueError(f"negative timestamp: {seconds!r}")
    return round(seconds * 1000)


def _timestamp(seconds: float, decimal_marker: str) -> str:
    rest = _milliseconds(seconds)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_marker}{millis:03d}"


def _cue_text(segment: Segment) -> str:
    # As openai-whisper does: "-->" inside the text would be read as a timing line.
    return segment.text.strip().replace("-->", "->")


def _render_txt(transcript: Transcript) -> str:
    return "".join(segment.text.strip() + "\n" for segment in transcript.segments)


def _render_srt(transcript: Transcript) -> str:
    return "".join(
        f"{number}\n{_timestamp(s.start, ',')} --> {_timestamp(s.end, ',')}\n{_cue_text(s)}\n\n"
        for number, s in enumerate(transcript.segments, start=1)
    )


def _render_vtt(transcript: Transcript) -> str:
    return "WEBVTT\n\n" + "".join(
        f"{_timestamp(s.start, '.')} --> {_timestamp(s.end, '.')}\n{_cue_text(s)}\n\n"
        for s in transcript.segments
    )


def _render_tsv(transcript: Transcript) -> str:
    rows = ["start\tend\ttext\n"]
    for s in transcript.segments:
        text = s.text.strip().replace("\t", " ").replace("\r", " ").replace("\n", " ")
        rows.append(f"{_milliseconds(s.start)}\t{_milliseconds(s.end)}\t{text}\n")
    return "".join(rows)


def _render_json(transcript: Transcript) -> str:
    return json.dumps(
        {
            "text": transcript.text,
            "language": transcript.language,
            "language_probability": transcript.language_probability,
            "duration": transcript.duration,
            "segments": transcript.segments_as_dicts(),
        },
        ensure_ascii=False,
        indent=2,
    )


_RENDERERS: dict[str, Callable[[Transcript], str]] = {
    "txt": _render_txt,
    "srt": _render_srt,
    "vtt": _render_vtt,
    "json": _render_json,
    "tsv": _render_tsv,
}


def render(transcript: Transcript, fmt: str) -> str:
    """The transcript in one of ``FORMATS``; ValueError for any other format."""
    try:
        renderer = _RENDERERS[fmt]
    except KeyError:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {FORMATS}") from None
    return renderer(transcript)


def output_paths(
    source: Path, formats: Sequence[str], output_dir: Path | None, language_tag: str | None = None
) -> dict[str, Path]:
    """Where each format goes: beside the source ("talk.mp3" -> "talk.txt"), or in output_dir.

    With a language tag the name carries it as media servers expect sidecar subtitles:
    "Movie (2020).mkv" -> "Movie (2020).en.srt".
    ValueError for an unknown format, or if an output would overwrite the source itself.
    """
    paths: dict[str, Path] = {}
    folder = source.parent if output_dir is None else output_dir
    stem = source.stem if language_tag is None else f"{source.stem}.{language_tag}"
    for fmt in formats:
        if fmt not in _RENDERERS:
            raise ValueError(f"unknown output format {fmt!r}; expected one of {FORMATS}")
        path = folder / f"{stem}.{fmt}"
        if path == source:
            raise ValueError(f"the {fmt} output would overwrite its source {source}")
        paths[fmt] = path
    return paths


@dataclass
class StagedOutputs:
    """Outputs written to temporary files beside their final paths, not yet visible there."""

    targets: dict[str, Path]
    """Format -> final path, in format order."""
    temporaries: dict[str, Path]
    """Format -> temporary file still on disk (emptied by publish and discard)."""
    _finished: bool = field(default=False, init=False, repr=False)

    def publish(self) -> list[Path]:
        """Moves each temporary onto its final path (atomically, one file at a time).

        Returns the final paths in format order. If a move fails, the temporaries not yet moved
        are removed and the error is raised; files already moved stay published.
        """
        if self._finished:
            raise RuntimeError("outputs were already published or discarded")
        try:
            for fmt, final in self.targets.items():
                os.replace(self.temporaries[fmt], final)
                del self.temporaries[fmt]
        finally:
            self.discard()
        for folder in {final.parent for final in self.targets.values()}:
            fsync_directory(folder)
        return list(self.targets.values())

    def discard(self) -> None:
        """Removes the temporaries not yet published; safe to call more than once."""
        self._finished = True
        while self.temporaries:
            _, temporary = self.temporaries.popitem()
            temporary.unlink(missing_ok=True)


def stage_outputs(
    transcript: Transcript,
    source: Path,
    formats: Sequence[str],
    output_dir: Path | None,
    language_tag: str | None = None,
) -> StagedOutputs:
    """Renders each format and writes it to a temporary file in its target folder.

    Creates output_dir (with parents) if needed. On any error the temporaries already written are
    removed and the error is raised. Call ``publish`` on the result to make the files visible.
    """
    targets = output_paths(source, formats, output_dir, language_tag)
    texts = {fmt: render(transcript, fmt) for fmt in targets}
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
    mode = 0o666 & ~_current_umask()
    staged = StagedOutputs(targets=targets, temporaries={})
    try:
        for fmt, final in targets.items():
            fd, name = tempfile.mkstemp(
                dir=final.parent, prefix="." + final.name + ".", suffix=".tmp"
            )
            staged.temporaries[fmt] = Path(name)
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(texts[fmt])
                handle.flush()
                # mkstemp makes the file 0600; give the outputs the mode a plain open() would.
                os.fchmod(handle.fileno(), mode)
                os.fsync(handle.fileno())
    except BaseException:
        staged.discard()
        raise
    return staged


def remove_stale_temporaries(
    source: Path, formats: Sequence[str], output_dir: Path | None, language_tagged: bool = False
) -> list[Path]:
    """Removes temporaries a killed worker left for this source's outputs; returns what it removed.

    language_tagged: the outputs carry a language tag, whichever it was ("talk.en.srt")."""
    removed = []
    for final in output_paths(source, formats, output_dir).values():
        # stage_outputs names them "." + final name + "." + mkstemp's random part (no dots) + ".tmp"
        name = (
            re.escape(final.stem)
            + (r"\.[^.]+" if language_tagged else "")
            + re.escape(final.suffix)
        )
        pattern = re.compile(rf"\.{name}\.[^.]+\.tmp")
        with contextlib.suppress(OSError), os.scandir(final.parent) as entries:
            for entry in entries:
                if pattern.fullmatch(entry.name):
                    temporary = final.parent / entry.name
                    temporary.unlink(missing_ok=True)
                    removed.append(temporary)
    return removed


def _current_umask() -> int:
    # Read without changing it where Linux allows: os.umask() sets it process-wide, for all threads.
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def fsync_directory(folder: Path) -> None:
    """Makes the renames in folder durable; best effort (not every platform can open a folder)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
