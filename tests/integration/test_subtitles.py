"""Subtitle rules on real transcripts, through real jobs on both databases: every cue of the srt
and vtt files obeys every rule, says every word in order, and the files match what the API renders
from the database; json keeps the model's segments without the words it did not ask for; and
subtitle_rules off writes one cue per segment, as before."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.helpers.media import FIXTURES
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.transcript import Transcript
from whisper_transcriber.db.values import JobOptions
from whisper_transcriber.worker.confinement import Confinement
from whisper_transcriber.worker.engine import Engine
from whisper_transcriber.worker.job_runner import run_job
from whisper_transcriber.worker.outputs import render, rendered
from whisper_transcriber.worker.subtitles import Cue, SubtitleRules, broken_rules

TIMING = re.compile(r"(\d\d):(\d\d):(\d\d)[,.](\d\d\d) --> (\d\d):(\d\d):(\d\d)[,.](\d\d\d)")


def seconds(parts: tuple[str, ...]) -> float:
    hours, minutes, secs, millis = map(int, parts)
    return hours * 3600 + minutes * 60 + secs + millis / 1000


def parsed(text: str) -> list[Cue]:
    """The cues of an srt or vtt file: times and text lines (a vtt voice span's tag left out)."""
    found = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        at = next((n for n, line in enumerate(lines) if TIMING.fullmatch(line)), None)
        if at is None:
            continue  # the WEBVTT header
        match = TIMING.fullmatch(lines[at])
        assert match is not None
        shown = [re.sub(r"^<v [^>]*>", "", line) for line in lines[at + 1 :]]
        found.append(Cue(seconds(match.groups()[:4]), seconds(match.groups()[4:]), tuple(shown)))
    return found


def transcribed(
    store: JobStore, engine: Engine, source: Path, options: JobOptions
) -> tuple[Transcript, dict[str, Path]]:
    job, _ = store.enqueue(source, options, "api")
    claimed = store.claim("w")
    assert claimed is not None and claimed.id == job.id
    run_job(store, engine, claimed, Confinement.of([source.parent]))
    done = store.get(job.id)
    assert done.status.value == "done", done
    stored = store.transcript(job.id)
    assert stored is not None
    return stored, {Path(p).suffix[1:]: Path(p) for p in done.outputs}


@pytest.mark.parametrize("name", ["conversation.flac", "long"])
def test_every_cue_of_a_real_transcript_obeys_every_rule(
    store: JobStore, engine: Engine, tmp_path: Path, long_speech: Path, name: str
) -> None:
    source = Path(shutil.copy(long_speech if name == "long" else FIXTURES / name, tmp_path))
    options = JobOptions(diarize=name != "long", formats=("srt", "vtt", "json"))
    stored, files = transcribed(store, engine, source, options)
    assert all(segment.words for segment in stored.segments)  # kept for the subtitles
    rules = SubtitleRules.of(options)
    assert rules is not None
    said = [w.word.strip() for s in stored.segments for w in s.words or ()]
    for fmt in ("srt", "vtt"):
        text = files[fmt].read_text()
        assert text == rendered(stored.named(), fmt, options)  # as the API renders it
        shown = parsed(text)
        assert broken_rules(shown, rules) == [], fmt
        assert len(shown) > len(stored.segments) / 2
        words = " ".join(shown_cue.text for shown_cue in shown).split()
        if fmt == "srt" and options.diarize:  # each cue starts with its speaker's name
            words = [w for w in words if not re.fullmatch(r"Speaker|\d:", w)]
        assert words == " ".join(said).split(), fmt
    document = json.loads(files["json"].read_text())
    assert [s["text"] for s in document["segments"]] == [s.text for s in stored.segments]
    assert all("words" not in s for s in document["segments"])  # not asked for


def test_subtitle_rules_off_writes_one_cue_per_segment(
    store: JobStore, engine: Engine, tmp_path: Path
) -> None:
    source = Path(shutil.copy(FIXTURES / "speech_a.wav", tmp_path))
    options = JobOptions(formats=("srt", "json"), subtitle_rules=False)
    stored, files = transcribed(store, engine, source, options)
    assert all(segment.words is None for segment in stored.segments)  # none computed
    assert files["srt"].read_text() == render(stored, "srt")
    assert len(parsed(files["srt"].read_text())) == len(stored.segments)
