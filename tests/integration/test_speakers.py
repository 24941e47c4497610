"""Speaker labels through the real model and the real embedder: a conversation of three espeak-ng
voices (tests/fixtures/conversation.*, with the true turns) labelled as the voices took turns; one
voice is one speaker; a missing embedder costs the labels, never the job; and through a real job
on both databases, the speakers reach the stored transcript, search hits and the output files."""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers.media import FIXTURES
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.speaker_names import SpeakerNameError, SpeakerNames
from whisper_transcriber.db.transcript import Transcript
from whisper_transcriber.db.values import JobOptions
from whisper_transcriber.worker.confinement import Confinement
from whisper_transcriber.worker.engine import Engine
from whisper_transcriber.worker.job_runner import run_job
from whisper_transcriber.worker.outputs import render, rendered
from whisper_transcriber.worker.renamed_files import rewrite_renamed
from whisper_transcriber.worker.speakers import package

CONVERSATION = FIXTURES / "conversation.flac"
# Of the speech that overlaps a true turn, the share labelled with that turn's speaker (under
# the best one-to-one naming of found speakers for true ones). The diarizer reaches about 0.97
# on this file (docs/benchmarks.md, "Speakers"); below 0.85 it would mix the voices up.
AGREEMENT = 0.85


def true_turns() -> list[tuple[float, float, str]]:
    reference = json.loads(CONVERSATION.with_suffix(".json").read_text())
    return [(float(start), float(end), str(voice)) for start, end, voice in reference["turns"]]


def agreement(transcript: Transcript) -> float:
    """Seconds of segment time inside true turns, labelled as the best naming says, as a share."""
    overlap: Counter[tuple[str, str]] = Counter()
    for segment in transcript.segments:
        assert segment.speaker is not None
        for start, end, voice in true_turns():
            shared = min(end, segment.end) - max(start, segment.start)
            if shared > 0:
                overlap[segment.speaker, voice] += shared
    naming: dict[str, str] = {}
    for (found, voice), _seconds in overlap.most_common():
        if found not in naming and voice not in naming.values():
            naming[found] = voice
    right = sum(s for (found, voice), s in overlap.items() if naming.get(found) == voice)
    return right / sum(overlap.values())


def test_a_conversation_is_labelled_as_its_voices_took_turns(engine: Engine) -> None:
    transcript = engine.transcribe(str(CONVERSATION), JobOptions(diarize=True, formats=("txt",)))
    assert transcript.speakers == ("Speaker 1", "Speaker 2", "Speaker 3")
    assert agreement(transcript) >= AGREEMENT, agreement(transcript)
    # Not asked for (nor needed for subtitles): computed to split segments, then dropped.
    assert all(segment.words is None for segment in transcript.segments)
    assert transcript.note is None

    given = engine.transcribe(
        str(CONVERSATION), JobOptions(diarize=True, num_speakers=2, word_timestamps=True)
    )
    assert given.speakers == ("Speaker 1", "Speaker 2")
    for segment in given.segments:  # each word kept, and said by its segment's speaker
        assert segment.words and {w.speaker for w in segment.words} == {segment.speaker}


def test_one_voice_is_one_speaker(engine: Engine) -> None:
    transcript = engine.transcribe(str(FIXTURES / "speech_a.wav"), JobOptions(diarize=True))
    assert transcript.speakers == ("Speaker 1",)
    plain = engine.transcribe(str(FIXTURES / "speech_a.wav"), JobOptions())
    assert transcript.text == plain.text


def test_a_missing_embedder_costs_the_labels_not_the_job(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(package, "DISTRIBUTION", "no-such-speaker-package")
    monkeypatch.setattr(engine, "_diarizer", None)  # as in a worker that has not loaded it yet
    txt = JobOptions(formats=("txt",))
    diarized = txt.model_copy(update={"diarize": True})
    transcript = engine.transcribe(str(FIXTURES / "speech_b.flac"), diarized)
    assert transcript.note is not None
    assert transcript.note.startswith("no speaker labels: speaker labels need the speakers extra")
    assert transcript.speakers == () and all(s.words is None for s in transcript.segments)
    assert transcript.text == engine.transcribe(str(FIXTURES / "speech_b.flac"), txt).text


def test_speakers_reach_the_database_search_and_files(
    store: JobStore, engine: Engine, tmp_path: Path
) -> None:
    source = Path(shutil.copy(CONVERSATION, tmp_path))
    job, _ = store.enqueue(source, JobOptions(diarize=True, formats=("txt", "vtt", "json")), "api")
    claimed = store.claim("w")
    assert claimed is not None and claimed.id == job.id
    run_job(store, engine, claimed, Confinement.of([tmp_path]))
    done = store.get(job.id)
    assert done.status.value == "done" and done.note is None, done

    stored = store.transcript(job.id)
    assert stored is not None and stored.speakers == ("Speaker 1", "Speaker 2", "Speaker 3")
    [hit, *_] = store.search("library")
    assert hit.job_id == job.id and hit.speaker in stored.speakers
    said = {segment.speaker for segment in stored.segments if "library" in segment.text.lower()}
    assert hit.speaker in said
    assert source.with_suffix(".txt").read_text().startswith("Speaker 1: ")
    assert "<v Speaker 2>" in source.with_suffix(".vtt").read_text()
    assert json.loads(source.with_suffix(".json").read_text())["speakers"] == list(stored.speakers)

    # Renamed: the files the job wrote are rewritten with the names, each as the API renders it.
    SpeakerNames(store).rename(job.id, {"Speaker 1": "Ada", "Speaker 2": "Grace"})
    assert rewrite_renamed(store) == [job.id]
    named = store.transcript(job.id)
    assert named is not None
    assert source.with_suffix(".txt").read_text().startswith("Ada: ")
    assert "<v Grace>" in source.with_suffix(".vtt").read_text()
    for fmt in ("txt", "vtt", "json"):
        assert source.with_suffix(f".{fmt}").read_text() == rendered(
            named.named(), fmt, done.options
        )


def labelled_job(store: JobStore, tmp_path: Path) -> int:
    """A done job whose transcript has three speakers (made without the model)."""
    from whisper_transcriber.db.transcript import Segment

    source = Path(shutil.copy(FIXTURES / "speech_a.wav", tmp_path))
    job, _ = store.enqueue(source, JobOptions(diarize=True, formats=("txt",)), "api")
    claimed = store.claim("w")
    assert claimed is not None
    segments = tuple(
        Segment(n, float(n), n + 1.0, f" Line {n}.", speaker=f"Speaker {n % 3 + 1}")
        for n in range(6)
    )
    store.complete(job.id, claimed.attempts, Transcript("en", 1.0, 6.0, segments))
    return job.id


def test_renames_at_once_keep_each_others_names(store: JobStore, tmp_path: Path) -> None:
    job_id = labelled_job(store, tmp_path)
    names = SpeakerNames(store)
    for round_ in range(5):
        start = threading.Barrier(3)

        def rename(label: str, name: str, start: threading.Barrier) -> None:
            start.wait()
            names.rename(job_id, {label: name})

        threads = [
            threading.Thread(target=rename, args=(f"Speaker {n}", f"N{n}-{round_}", start))
            for n in (1, 2, 3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stored = store.transcript(job_id)
        assert stored is not None
        assert stored.speaker_names == {f"Speaker {n}": f"N{n}-{round_}" for n in (1, 2, 3)}


def test_names_are_one_per_speaker_and_safe_to_show(store: JobStore, tmp_path: Path) -> None:
    job_id = labelled_job(store, tmp_path)
    names = SpeakerNames(store)
    assert names.rename(job_id, {"Speaker 1": "👩\u200d💻 Grace", "Speaker 2": "Tom & Jerry"})
    for wrong, reason in (
        ({"Speaker 3": "Tom & Jerry"}, "both be shown as"),
        ({"Speaker 3": "Speaker 2"}, "another speaker's label"),
        ({"Speaker 3": "=HYPERLINK(1)"}, "spreadsheet"),
        ({"Speaker 3": "a\u202eb"}, "U+202E"),
        ({"Speaker 3": "a\tb"}, "U+0009"),
        ({"Speaker 4": "Zed"}, "has no speaker 'Speaker 4'"),
    ):
        with pytest.raises(SpeakerNameError, match=re.escape(reason)):
            names.rename(job_id, wrong)
    stored = store.transcript(job_id)
    assert stored is not None
    assert stored.speaker_names == {"Speaker 1": "👩\u200d💻 Grace", "Speaker 2": "Tom & Jerry"}
    assert "<v Tom &amp; Jerry>" in render(stored.named(), "vtt")
    assert names.rename(job_id, {"Speaker 2": " "}) == {"Speaker 1": "👩\u200d💻 Grace"}


def test_a_job_without_the_labels_it_asked_for_is_run_again_when_asked_again(
    store: JobStore, tmp_path: Path
) -> None:
    from whisper_transcriber.db.transcript import Segment

    source = Path(shutil.copy(FIXTURES / "speech_a.wav", tmp_path))
    options = JobOptions(diarize=True, formats=("txt",))
    job, _ = store.enqueue(source, options, "api")
    claimed = store.claim("w")
    assert claimed is not None
    lacking = Transcript("en", 1.0, 1.0, (Segment(0, 0.0, 1.0, " Hi."),), note="no speaker labels")
    store.complete(job.id, claimed.attempts, lacking, note=lacking.note)
    # An inbox's rescan sees the file done (or it would run it on every rescan) ...
    assert store.enqueue(source, options, "inbox:a", any_options=True) == (store.get(job.id), False)
    # ... a request for the same work asks for another try, and the new job answers after it.
    again, created = store.enqueue(source, options, "api")
    assert created and again.id != job.id
    assert store.enqueue(source, options, "api") == (again, False)
