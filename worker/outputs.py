"""Transcript output formats (txt, srt, vtt, json, tsv) and their file names.

The formats are written by hand rather than through a subtitle library so that we control every
byte: whisper-asr-webservice and Bazarr clients expect exactly what openai-whisper's writers produce
(cue numbering, ``HH:MM:SS,mmm`` timestamps rounded to the millisecond, blank lines between cues,
integer milliseconds in tsv), and a few lines of string formatting are easier to pin with tests
than another dependency's defaults.

Writing them is worker/staging.py's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from whisper_transcriber.db.transcript import Segment, Transcript
from whisper_transcriber.db.values import JobOptions, OutputFormat, known_format
from whisper_transcriber.worker.names import name_bytes, shown
from whisper_transcriber.worker.subtitles import Cue, SubtitleRules, cues


def _milliseconds(seconds: float) -> int:
    if seconds < 0:
        raise ValueError(f"negative timestamp: {seconds!r}")
    return round(seconds * 1000)


def _timestamp(seconds: float, decimal_marker: str) -> str:
    # The same text as faster_whisper.utils.format_timestamp(seconds, True, decimal_marker)
    # (tests/unit/test_outputs.py compares them), which is not used: importing faster_whisper loads
    # CTranslate2 and numpy, and the API and the CLI render transcripts without the model stack.
    rest = _milliseconds(seconds)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_marker}{millis:03d}"


def _cue_text(segment: Segment) -> str:
    # As openai-whisper does: "-->" inside the text would be read as a timing line.
    return segment.text.strip().replace("-->", "->")


def _one_line(text: str) -> str:
    """Text for a line of its own or a tsv cell: no line breaks, no tabs."""
    return text.strip().replace("\t", " ").replace("\r", " ").replace("\n", " ")


def _said_by(segment: Segment) -> str:
    """The cue's text, after its speaker's name when it has one (srt): "Speaker 1: Hello."."""
    text = _cue_text(segment)
    return f"{_one_line(segment.speaker).replace('-->', '->')}: {text}" if segment.speaker else text


def _voice(segment: Segment) -> str:
    """The cue's text in a WebVTT voice span when it has a speaker: "<v Speaker 1>Hello."."""
    return _voiced(segment.speaker, _vtt_text(_cue_text(segment)))


def _vtt_text(text: str) -> str:
    """Cue text as WebVTT reads it back: & starts an escape and < a tag ("AT&T", "x < y" would
    lose characters in a player), so they are written &amp; and &lt;."""
    return text.replace("&", "&amp;").replace("<", "&lt;")


def _voiced(speaker: str | None, text: str) -> str:
    """Text in a WebVTT voice span when it has a speaker; the name loses what would end the tag
    or start another, and & is written as WebVTT escapes it."""
    if not speaker:
        return text
    name = _one_line(speaker).translate({ord("<"): None, ord(">"): None})
    return f"<v {name.replace('&', '&amp;').replace('-->', '->')}>{text}"


def _render_txt(transcript: Transcript) -> str:
    if not transcript.speakers:
        return "".join(segment.text.strip() + "\n" for segment in transcript.segments)
    # One paragraph per turn: the speaker's name, then what they said until someone else speaks.
    turns: list[tuple[str | None, list[str]]] = []
    for segment in transcript.segments:
        if turns and turns[-1][0] == segment.speaker:
            turns[-1][1].append(segment.text.strip())
        else:
            turns.append((segment.speaker, [segment.text.strip()]))
    return "\n".join(f"{_one_line(speaker or '')}: {' '.join(texts)}\n" for speaker, texts in turns)


def _render_srt(transcript: Transcript) -> str:
    return "".join(
        f"{number}\n{_timestamp(s.start, ',')} --> {_timestamp(s.end, ',')}\n{_said_by(s)}\n\n"
        for number, s in enumerate(transcript.segments, start=1)
    )


def _render_vtt(transcript: Transcript) -> str:
    return "WEBVTT\n\n" + "".join(
        f"{_timestamp(s.start, '.')} --> {_timestamp(s.end, '.')}\n{_voice(s)}\n\n"
        for s in transcript.segments
    )


def _render_tsv(transcript: Transcript) -> str:
    # The speaker is a fourth column, after the text, only with speaker labels: readers of the
    # three columns openai-whisper writes find them where they were.
    speakers = bool(transcript.speakers)
    rows = ["start\tend\ttext\tspeaker\n" if speakers else "start\tend\ttext\n"]
    for s in transcript.segments:
        row = f"{_milliseconds(s.start)}\t{_milliseconds(s.end)}\t{_one_line(s.text)}"
        rows.append(f"{row}\t{_one_line(s.speaker or '')}\n" if speakers else f"{row}\n")
    return "".join(rows)


def _render_json(transcript: Transcript) -> str:
    return json.dumps(
        {
            "text": transcript.text,
            "language": transcript.language,
            "language_probability": transcript.language_probability,
            "duration": transcript.duration,
            "segments": transcript.segments_as_dicts(),
            **({"speakers": list(transcript.speakers)} if transcript.speakers else {}),
        },
        ensure_ascii=False,
        indent=2,
    )


_RENDERERS: dict[OutputFormat, Callable[[Transcript], str]] = {
    "txt": _render_txt,
    "srt": _render_srt,
    "vtt": _render_vtt,
    "json": _render_json,
    "tsv": _render_tsv,
}


def render(transcript: Transcript, fmt: str) -> str:
    """The transcript in one of the output formats, one cue per segment; ValueError for any
    other format (known_format). A job's outputs are `rendered`."""
    return _RENDERERS[known_format(fmt)](transcript)


def rendered(transcript: Transcript, fmt: str, options: JobOptions) -> str:
    """The transcript as the job's files have it: srt and vtt in cues made by the job's subtitle
    rules, words only where the job asked for them (they may be kept for the subtitles)."""
    rules = SubtitleRules.of(options)
    fmt = known_format(fmt)
    if fmt in ("srt", "vtt") and rules is not None:
        return (
            _render_srt_cues(transcript, rules)
            if fmt == "srt"
            else _render_vtt_cues(transcript, rules)
        )
    return render(transcript if options.word_timestamps else transcript.without_words(), fmt)


def _cue_lines(cue: Cue) -> str:
    # As openai-whisper does: "-->" inside the text would be read as a timing line.
    return "\n".join(_one_line(line).replace("-->", "->") for line in cue.lines)


def _render_srt_cues(transcript: Transcript, rules: SubtitleRules) -> str:
    return "".join(
        f"{number}\n{_timestamp(c.start, ',')} --> {_timestamp(c.end, ',')}\n{_cue_lines(c)}\n\n"
        for number, c in enumerate(cues(transcript, rules, labelled=True), start=1)
    )


def _render_vtt_cues(transcript: Transcript, rules: SubtitleRules) -> str:
    return "WEBVTT\n\n" + "".join(
        f"{_timestamp(c.start, '.')} --> {_timestamp(c.end, '.')}\n"
        f"{_voiced(c.speaker, _vtt_text(_cue_lines(c)))}\n\n"
        for c in cues(transcript, rules)
    )


class OutputNameError(ValueError):
    """A transcript that cannot have its name: it would overwrite its own source, or the name is
    longer than the file system allows. Running the job again would end the same way."""


def output_paths(
    source: Path,
    formats: Sequence[str],
    output_dir: Path | None,
    language_tag: str | None = None,
    *,
    name: str | None = None,
) -> dict[str, Path]:
    """Where each format goes: beside the source ("talk.mp3" -> "talk.txt"), or in output_dir.

    With a language tag the name carries it as media servers expect sidecar subtitles:
    "Movie (2020).mkv" -> "Movie (2020).en.srt". name: the file name the outputs are named
    after when not the source's (a link's, as found in an inbox). These are the plain names;
    one taken by a file that is not the source's own makes them numbered (worker/staging.py).
    ValueError for an unknown format; OutputNameError if an output would overwrite the source.
    """
    paths: dict[str, Path] = {}
    folder = source.parent if output_dir is None else output_dir
    stem = source.stem if name is None else Path(name).stem
    if language_tag is not None:
        stem = f"{stem}.{language_tag}"
    for fmt in map(known_format, formats):
        path = folder / f"{stem}.{fmt}"
        if path == source:
            raise OutputNameError(
                f"the {fmt} output would overwrite its source {source}: nothing was written"
            )
        paths[fmt] = path
    return paths


def check_name_lengths(paths: Mapping[str, Path], name_max: int) -> None:
    """OutputNameError when an output's name takes more than name_max bytes."""
    for fmt, path in paths.items():
        if name_bytes(path.name) > name_max:
            raise OutputNameError(
                f"the {fmt} transcript's name {shown(path.name)} would be "
                f"{name_bytes(path.name)} bytes long, and names in {path.parent} may have at most "
                f"{name_max}: give the source a shorter name"
            )
