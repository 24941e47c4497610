from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import pytest

from whisper_transcriber.db.transcript import Segment, Transcript, Word
from whisper_transcriber.db.values import OUTPUT_FORMATS, JobOptions, known_formats
from whisper_transcriber.worker.outputs import output_paths, render, rendered
from whisper_transcriber.worker.staging import remove_stale_temporaries, stage_outputs

TRANSCRIPT = Transcript(
    language="en",
    language_probability=0.98,
    duration=5.2,
    segments=(
        Segment(
            id=0,
            start=0.0,
            end=2.5,
            text=" Hello world.",
            words=(Word(0.0, 1.0, " Hello", 0.9), Word(1.0, 2.5, " world.", 0.8)),
        ),
        Segment(id=1, start=2.5, end=5.123, text=" Goodbye."),
    ),
)

EXPECTED = {
    "txt": "Hello world.\nGoodbye.\n",
    "srt": (
        "1\n00:00:00,000 --> 00:00:02,500\nHello world.\n\n"
        "2\n00:00:02,500 --> 00:00:05,123\nGoodbye.\n\n"
    ),
    "vtt": (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:02.500\nHello world.\n\n"
        "00:00:02.500 --> 00:00:05.123\nGoodbye.\n\n"
    ),
    "tsv": "start\tend\ttext\n0\t2500\tHello world.\n2500\t5123\tGoodbye.\n",
    "json": """{
  "text": "Hello world. Goodbye.",
  "language": "en",
  "language_probability": 0.98,
  "duration": 5.2,
  "segments": [
    {
      "id": 0,
      "start": 0.0,
      "end": 2.5,
      "text": " Hello world.",
      "words": [
        {
          "start": 0.0,
          "end": 1.0,
          "word": " Hello",
          "probability": 0.9
        },
        {
          "start": 1.0,
          "end": 2.5,
          "word": " world.",
          "probability": 0.8
        }
      ]
    },
    {
      "id": 1,
      "start": 2.5,
      "end": 5.123,
      "text": " Goodbye."
    }
  ]
}""",
}

UNICODE = Transcript(
    language="de",
    language_probability=0.5,
    duration=2.0,
    segments=(
        Segment(
            id=0,
            start=0.0,
            end=2.0,
            text=" Grüße aus Köln, 世界 — café ✓",
            words=(Word(0.0, 1.0, " Grüße", 0.75), Word(1.0, 2.0, " ✓", 0.25)),
        ),
    ),
)


def one_segment(start: float, end: float, text: str = " x") -> Transcript:
    return Transcript("en", 1.0, end, (Segment(id=0, start=start, end=end, text=text),))


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
def test_render_exact(fmt: str) -> None:
    assert render(TRANSCRIPT, fmt) == EXPECTED[fmt]


def test_formats_are_the_documented_ones() -> None:
    assert OUTPUT_FORMATS == ("txt", "srt", "vtt", "json", "tsv")
    assert set(EXPECTED) == set(OUTPUT_FORMATS)


def test_render_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown format 'docx'"):
        render(TRANSCRIPT, "docx")


def test_formats_are_checked_in_one_place() -> None:
    """Job options and the writers read formats as known_formats does (the settings too:
    tests/unit/test_settings.py): in any case, each once, an unknown one refused in the same words."""
    assert known_formats(["SRT", "txt", "srt"]) == ("srt", "txt")
    assert JobOptions(formats=("SRT", "txt", "srt")).formats == ("srt", "txt")
    assert render(TRANSCRIPT, "SRT") == EXPECTED["srt"]
    reason = re.escape("unknown format 'pdf', 'doc'; choose from txt, srt, vtt, json, tsv")
    with pytest.raises(ValueError, match=reason):
        known_formats(["srt", "PDF", "doc"])
    with pytest.raises(ValueError, match=reason):
        JobOptions(formats=("srt", "pdf", "doc"))
    with pytest.raises(ValueError, match="at least one output format is needed"):
        JobOptions(formats=())


@pytest.mark.parametrize("decimal_marker", [",", "."])
def test_timestamps_are_faster_whispers(decimal_marker: str) -> None:
    """The hand-written timestamps (worker/outputs.py says why) read as faster-whisper's own."""
    from faster_whisper.utils import format_timestamp

    samples = [0.0, 0.0004, 0.0005, 0.0015, 1.2345, 59.9995, 61.5, 3599.9996, 3600.0, 36_000.25]
    samples += [n * 0.37 for n in range(2000)]
    for seconds in samples:
        line = render(one_segment(seconds, seconds), "srt" if decimal_marker == "," else "vtt")
        ours = line.split(" --> ")[0].splitlines()[-1]
        assert ours == format_timestamp(seconds, True, decimal_marker), seconds


def test_json_words_only_when_present_and_round_trips() -> None:
    data = json.loads(render(TRANSCRIPT, "json"))
    assert "words" in data["segments"][0]
    assert "words" not in data["segments"][1]
    assert Transcript.from_dict(data) == TRANSCRIPT


def test_empty_transcript() -> None:
    empty = Transcript("en", 1.0, 0.0)
    assert render(empty, "txt") == ""
    assert render(empty, "srt") == ""
    assert render(empty, "vtt") == "WEBVTT\n\n"
    assert render(empty, "tsv") == "start\tend\ttext\n"
    assert json.loads(render(empty, "json"))["segments"] == []


@pytest.mark.parametrize(
    ("seconds", "srt", "vtt", "millis"),
    [
        (0.0, "00:00:00,000", "00:00:00.000", 0),
        (0.001, "00:00:00,001", "00:00:00.001", 1),
        (1.0004, "00:00:01,000", "00:00:01.000", 1000),
        (1.0006, "00:00:01,001", "00:00:01.001", 1001),
        (59.9999, "00:01:00,000", "00:01:00.000", 60000),
        (3599.9994, "00:59:59,999", "00:59:59.999", 3599999),
        (3599.9996, "01:00:00,000", "01:00:00.000", 3600000),
        (3661.25, "01:01:01,250", "01:01:01.250", 3661250),
        (360000.0, "100:00:00,000", "100:00:00.000", 360000000),
    ],
)
def test_timestamp_rounding(seconds: float, srt: str, vtt: str, millis: int) -> None:
    transcript = one_segment(seconds, seconds)
    assert render(transcript, "srt") == f"1\n{srt} --> {srt}\nx\n\n"
    assert render(transcript, "vtt") == f"WEBVTT\n\n{vtt} --> {vtt}\nx\n\n"
    assert render(transcript, "tsv") == f"start\tend\ttext\n{millis}\t{millis}\tx\n"


def test_negative_timestamp_is_rejected() -> None:
    with pytest.raises(ValueError, match="negative timestamp"):
        render(one_segment(-0.5, 1.0), "srt")


def test_tsv_flattens_tabs_and_newlines() -> None:
    transcript = one_segment(0.0, 1.0, " a\tb\nc\r\nd ")
    assert render(transcript, "tsv") == "start\tend\ttext\n0\t1000\ta b c  d\n"


def test_cue_text_cannot_fake_a_timing_line() -> None:
    transcript = one_segment(0.0, 1.0, " go --> there ")
    assert render(transcript, "srt").splitlines()[2] == "go -> there"
    assert render(transcript, "vtt").splitlines()[3] == "go -> there"
    assert render(transcript, "txt") == "go --> there\n"


def test_vtt_escapes_what_would_start_a_tag_or_an_escape() -> None:
    """A player reads "<" as a tag and "&" as an escape in WebVTT: the text comes back whole only
    if they are written &lt; and &amp;. srt and txt keep them as they are."""
    text = " AT&T: x < y > z &amp; "
    transcript = one_segment(0.0, 1.0, text)
    assert render(transcript, "vtt").splitlines()[3] == "AT&amp;T: x &lt; y > z &amp;amp;"
    assert render(transcript, "srt").splitlines()[2] == text.strip()
    cued = rendered(transcript, "vtt", JobOptions())
    assert cued.splitlines()[3] == "AT&amp;T: x &lt; y > z &amp;amp;"
    spoken = dataclasses.replace(
        transcript,
        segments=(dataclasses.replace(transcript.segments[0], speaker="Tom & <Jerry>"),),
    )
    assert (
        render(spoken, "vtt").splitlines()[3]
        == "<v Tom &amp; Jerry>AT&amp;T: x &lt; y > z &amp;amp;"
    )


def test_output_paths_beside_source() -> None:
    source = Path("/media/show/my.talk.mp3")
    assert output_paths(source, ["txt", "srt"], None) == {
        "txt": Path("/media/show/my.talk.txt"),
        "srt": Path("/media/show/my.talk.srt"),
    }


def test_output_paths_in_output_dir() -> None:
    source = Path("/media/show/my.talk.mp3")
    paths = output_paths(source, OUTPUT_FORMATS, Path("/out/x"))
    assert list(paths) == list(OUTPUT_FORMATS)
    assert paths == {fmt: Path(f"/out/x/my.talk.{fmt}") for fmt in OUTPUT_FORMATS}


def test_output_paths_rejects_unknown_format_and_overwriting_the_source() -> None:
    with pytest.raises(ValueError, match="unknown format 'mp3'"):
        output_paths(Path("talk.wav"), ["txt", "mp3"], None)
    with pytest.raises(ValueError, match="would overwrite its source"):
        output_paths(Path("/media/notes.txt"), ["txt"], None)
    with pytest.raises(ValueError, match="would overwrite its source"):
        output_paths(Path("/media/notes.json"), ["json"], Path("/media"))


def test_stage_then_publish(tmp_path: Path) -> None:
    source = tmp_path / "talk.mp3"
    source.write_bytes(b"audio")
    staged = stage_outputs(TRANSCRIPT, source, ["srt", "txt", "json"], None)

    # Nothing visible yet: only hidden temporaries beside the source.
    names = files_in(tmp_path)
    assert "talk.srt" not in names
    assert len(names) == 4
    for fmt in ("srt", "txt", "json"):
        temporary = staged.temporaries[fmt]
        assert temporary.parent == tmp_path
        # Hidden, of fixed length, known by the source's tag: ".wt-<12 hex>-<8 hex>.tmp".
        assert re.fullmatch(r"\.wt-[0-9a-f]{12}-[0-9a-f]{8}\.tmp", temporary.name)

    published = staged.publish()

    assert published == [tmp_path / "talk.srt", tmp_path / "talk.txt", tmp_path / "talk.json"]
    assert files_in(tmp_path) == ["talk.json", "talk.mp3", "talk.srt", "talk.txt"]
    for path, fmt in zip(published, ("srt", "txt", "json"), strict=True):
        assert path.read_bytes() == EXPECTED[fmt].encode("utf-8")
    assert staged.temporaries == {}
    staged.discard()  # harmless after publish
    assert files_in(tmp_path) == ["talk.json", "talk.mp3", "talk.srt", "talk.txt"]


def test_published_files_get_the_usual_mode(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    reference.write_text("x")
    [path] = stage_outputs(TRANSCRIPT, tmp_path / "talk.mp3", ["txt"], None).publish()
    assert path.stat().st_mode == reference.stat().st_mode


def test_stage_into_new_output_dir_replaces_its_own_earlier_files(tmp_path: Path) -> None:
    output_dir = tmp_path / "a" / "b"
    ours = [str(output_dir / "talk.txt")]
    staged = stage_outputs(
        TRANSCRIPT, tmp_path / "talk.flac", OUTPUT_FORMATS, output_dir, ours=ours
    )
    assert output_dir.is_dir()
    (output_dir / "talk.txt").write_text("old")  # an earlier run's output is replaced
    (output_dir / "talk.txt").chmod(0o600)  # and keeps the mode someone gave it
    staged.publish()
    assert files_in(output_dir) == sorted(f"talk.{fmt}" for fmt in OUTPUT_FORMATS)
    assert (output_dir / "talk.txt").read_text(encoding="utf-8") == EXPECTED["txt"]
    assert (output_dir / "talk.txt").stat().st_mode & 0o777 == 0o600


def test_stage_then_discard_leaves_nothing(tmp_path: Path) -> None:
    staged = stage_outputs(TRANSCRIPT, tmp_path / "talk.mp3", OUTPUT_FORMATS, tmp_path / "out")
    assert len(files_in(tmp_path / "out")) == len(OUTPUT_FORMATS)
    staged.discard()
    assert files_in(tmp_path / "out") == []
    staged.discard()
    assert files_in(tmp_path / "out") == []
    with pytest.raises(RuntimeError, match="already published or discarded"):
        staged.publish()
    assert files_in(tmp_path / "out") == []


def test_unknown_format_fails_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown format 'pdf'"):
        stage_outputs(TRANSCRIPT, tmp_path / "talk.mp3", ["txt", "pdf"], tmp_path / "out")
    assert files_in(tmp_path) == []


def test_output_dir_that_is_a_file_fails_cleanly(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "out"
    not_a_dir.write_text("in the way")
    with pytest.raises(OSError, match="out"):
        stage_outputs(TRANSCRIPT, tmp_path / "talk.mp3", OUTPUT_FORMATS, not_a_dir)
    assert files_in(tmp_path) == ["out"]
    assert not_a_dir.read_text() == "in the way"


def test_failure_midway_removes_written_temporaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync
    calls: list[int] = []

    def failing_fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space left"):
        stage_outputs(TRANSCRIPT, tmp_path / "talk.mp3", OUTPUT_FORMATS, tmp_path)
    assert len(calls) == 3
    assert files_in(tmp_path) == []


def test_failed_publish_removes_remaining_temporaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    staged = stage_outputs(TRANSCRIPT, tmp_path / "talk.mp3", ["txt", "srt", "vtt"], None)
    real_link = os.link

    def link_failing_for_srt(source: str, name: str, **kwargs: object) -> None:
        if name.endswith(".srt"):
            raise OSError(5, "Input/output error", name)
        real_link(source, name, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "link", link_failing_for_srt)
    with pytest.raises(OSError, match=r"talk\.srt"):
        staged.publish()
    # txt came first and is published; srt and vtt are gone, temporaries included.
    assert files_in(tmp_path) == ["talk.txt"]
    assert staged.temporaries == {}


def test_unicode_round_trips(tmp_path: Path) -> None:
    published = stage_outputs(UNICODE, tmp_path / "köln.ogg", OUTPUT_FORMATS, None).publish()
    assert [p.name for p in published] == [f"köln.{fmt}" for fmt in OUTPUT_FORMATS]
    for path, fmt in zip(published, OUTPUT_FORMATS, strict=True):
        raw = path.read_bytes()
        assert b"\r" not in raw
        assert raw.decode("utf-8") == render(UNICODE, fmt)
    assert (tmp_path / "köln.txt").read_text(encoding="utf-8") == "Grüße aus Köln, 世界 — café ✓\n"
    json_text = (tmp_path / "köln.json").read_text(encoding="utf-8")
    assert "世界" in json_text  # not \u-escaped
    assert Transcript.from_dict(json.loads(json_text)) == UNICODE


def test_stale_temporaries_of_one_source_only_are_removed(tmp_path: Path) -> None:
    plain = stage_outputs(TRANSCRIPT, tmp_path / "Movie.mkv", ["srt", "txt"], None)
    tagged = stage_outputs(TRANSCRIPT, tmp_path / "Movie.mkv", ["srt"], None, language_tag="en")
    # Another video, and one of the same stem whose outputs have the very same names.
    sibling = stage_outputs(
        TRANSCRIPT, tmp_path / "Movie.Extended.mkv", ["srt"], None, language_tag="en"
    )
    same_stem = stage_outputs(TRANSCRIPT, tmp_path / "Movie.mp4", ["srt", "txt"], None)
    # As a killed worker leaves them: nothing published, temporaries on disk.
    left = [*plain.temporaries.values(), *tagged.temporaries.values()]
    assert sorted(remove_stale_temporaries(tmp_path / "Movie.mkv", ["srt"], None)) == sorted(left)
    assert not any(path.exists() for path in left)
    assert remove_stale_temporaries(tmp_path / "Movie.mkv", ["srt"], None, True) == []
    # Work in progress of the other sources stays.
    others = [*sibling.temporaries.values(), *same_stem.temporaries.values()]
    assert len(others) == 3 and all(path.exists() for path in others)
    sibling.discard()
    same_stem.discard()


def test_temporaries_named_as_before_an_upgrade_are_removed_too(tmp_path: Path) -> None:
    earlier = [tmp_path / ".Movie.srt.0a1b2c3d.tmp", tmp_path / ".Movie.en.srt.4e5f6a7b.tmp"]
    kept = [tmp_path / ".Movie.Extended.srt.0a1b2c3d.tmp", tmp_path / "Movie.srt"]
    for path in [*earlier, *kept]:
        path.write_text("half a transcript")
    assert remove_stale_temporaries(tmp_path / "Movie.mkv", ["srt"], None) == [earlier[0]]
    assert remove_stale_temporaries(tmp_path / "Movie.mkv", ["srt"], None, True) == [earlier[1]]
    assert all(path.exists() for path in kept)
