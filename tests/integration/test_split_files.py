"""A long file split into piece jobs that any worker takes, joined into one transcript: the real
model on real speech, in this process, on both databases; pieces made short so that a
44-second file has several."""

from __future__ import annotations

import itertools
import os
import subprocess
import threading
from pathlib import Path

import pytest

from tests.helpers.waiting import wait_until
from whisper_transcriber.db.errors import InvalidTransition
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.transcript import Transcript
from whisper_transcriber.db.values import JobOptions, JobQuery
from whisper_transcriber.worker.audio_stream import SAMPLING_RATE
from whisper_transcriber.worker.confinement import Confinement
from whisper_transcriber.worker.engine import Engine
from whisper_transcriber.worker.job_runner import run_job
from whisper_transcriber.worker.split_files import SplitRules, silence_point, split_spans

SENTENCES = (
    "Welcome to the museum, where every painting tells a story.",
    "Please send the quarterly report to the finance team by Friday.",
    "My favorite color is green and my favorite animal is the elephant.",
    "The weather today is cloudy with a chance of rain in the afternoon.",
    "We will meet again next week to discuss the budget for the new library.",
    "The train to the city leaves at half past eight every morning.",
    "Children were playing in the park while their parents talked on the benches.",
    "The committee decided to postpone the vote until all members could attend.",
)
# A word of each sentence that tiny.en gets right however the file is cut.
KEYWORDS = ("museum", "quarterly", "elephant", "afternoon", "library", "eight", "benches", "vote")
SPLIT = SplitRules(after_s=10.0, piece_s=12.0)


@pytest.fixture(scope="module")
def paragraph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sentences spoken by espeak-ng, about 35 s."""
    folder = tmp_path_factory.mktemp("paragraph")
    said, path = folder / "said.wav", folder / "paragraph.wav"
    text = " ".join(SENTENCES)
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(said), text], check=True)
    subprocess.run(["sox", "-R", str(said), "-r", "16000", "-c", "1", str(path)], check=True)
    return path


def _copy(paragraph: Path, tmp_path: Path) -> Path:
    media = tmp_path / "media"
    media.mkdir(exist_ok=True)
    target = media / "talk.wav"
    target.write_bytes(paragraph.read_bytes())
    return target


def test_the_cuts_fall_in_pauses_and_cover_the_file(paragraph: Path) -> None:
    spans = split_spans(str(paragraph), SPLIT.piece_s)
    assert len(spans) >= 3
    assert spans[0][0] == 0
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    from faster_whisper import decode_audio
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    audio = decode_audio(str(paragraph))
    assert spans[-1][1] == audio.shape[0]
    speech = get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=100, speech_pad_ms=0))
    for _, cut in spans[:-1]:  # no cut inside what the detector calls speech
        inside = [c for c in speech if c["start"] < cut < c["end"]]
        assert not inside, f"cut at {cut / SAMPLING_RATE:.2f} s falls in speech {inside}"


def test_the_longest_pause_is_chosen(paragraph: Path) -> None:
    from faster_whisper import decode_audio

    window = decode_audio(str(paragraph))[: 10 * SAMPLING_RATE].copy()
    window[6 * SAMPLING_RATE : int(7.5 * SAMPLING_RATE)] = 0.0  # longer than any pause spoken
    point = silence_point(window)
    assert 6 * SAMPLING_RATE < point < 7.5 * SAMPLING_RATE


def test_a_long_file_becomes_pieces_and_one_transcript(
    store: JobStore, engine: Engine, paragraph: Path, tmp_path: Path
) -> None:
    source = _copy(paragraph, tmp_path)
    whole_dir = tmp_path / "whole"
    whole_dir.mkdir()
    whole_source = Path(whole_dir / "talk.wav")
    whole_source.write_bytes(paragraph.read_bytes())
    options = JobOptions(formats=("txt", "srt", "json"), word_timestamps=True)
    parent, _ = store.enqueue(source, options, "test")
    job = store.claim("w1")
    assert job is not None and job.id == parent.id
    run_job(store, engine, job, Confinement.of([tmp_path]), split=SPLIT)

    done = store.get(parent.id)
    assert done.status is JobStatus.DONE, done.error
    assert store.pieces(parent.id) == []  # removed with the parent's end
    transcript = store.transcript(parent.id)
    assert transcript is not None
    # Every sentence is there, in order, once.
    text = transcript.text.lower()
    positions = [text.find(word) for word in KEYWORDS]
    assert all(p >= 0 for p in positions), text
    assert positions == sorted(positions), text
    # Times run on across pieces, words inside their segments; ids run on.
    starts = [segment.start for segment in transcript.segments]
    assert starts == sorted(starts)
    assert transcript.segments[-1].end > 25
    assert [s.id for s in transcript.segments] == list(range(1, len(transcript.segments) + 1))
    for segment in transcript.segments:
        assert segment.words
        assert segment.start - 0.5 <= segment.words[0].start <= segment.words[-1].end
        assert segment.words[-1].end <= segment.end + 0.5
    assert abs(transcript.duration - 35) < 10
    assert (source.parent / "talk.srt").is_file()
    assert (source.parent / "talk.txt").read_text().strip()
    # Listings and search show the parent only.
    listed = store.list_jobs(JobQuery(), 100)
    assert [j.id for j in listed] == [parent.id]
    assert {hit.job_id for hit in store.search("museum")} == {parent.id}

    # The same file whole, split off: the same words but for a few at the cuts.
    whole_job, _ = store.enqueue(whole_source, options, "test")
    claimed = store.claim("w1")
    assert claimed is not None and claimed.id == whole_job.id
    run_job(store, engine, claimed, Confinement.of([tmp_path]))
    whole = store.transcript(whole_job.id)
    assert whole is not None
    split_words, whole_words = transcript.text.split(), whole.text.split()
    assert abs(len(split_words) - len(whole_words)) <= 6


def test_other_workers_take_pieces_and_the_parent_waits_for_them(
    store: JobStore, engine: Engine, paragraph: Path, tmp_path: Path
) -> None:
    source = _copy(paragraph, tmp_path)
    parent, _ = store.enqueue(source, JobOptions(formats=("txt",)), "test")
    job = store.claim("w1")
    assert job is not None
    # Other work in the queue: neither the splitting worker nor the helper, taking pieces, takes it.
    unrelated, _ = store.enqueue(tmp_path / "elsewhere.wav", JobOptions(model="other"), "test")
    confinement = Confinement.of([tmp_path])
    helper_ran: list[int] = []

    def helper() -> None:  # a second worker: it takes whatever piece is due
        while store.get(parent.id).status is JobStatus.RUNNING:
            piece = store.claim("w2", piece_of=parent.id)
            if piece is None:
                threading.Event().wait(0.05)
                continue
            helper_ran.append(piece.id)
            run_job(store, engine, piece, confinement)

    other = threading.Thread(target=helper)
    other.start()
    run_job(store, engine, job, confinement, split=SPLIT)
    other.join(300)
    done = store.get(parent.id)
    assert done.status is JobStatus.DONE, done.error
    assert helper_ran, "the second worker took no piece"
    assert "museum" in (source.parent / "talk.txt").read_text().lower()
    assert store.get(unrelated.id).status is JobStatus.QUEUED


def test_a_lost_piece_is_retried_not_the_file(
    store: JobStore, engine: Engine, paragraph: Path, tmp_path: Path
) -> None:
    source = _copy(paragraph, tmp_path)
    parent, _ = store.enqueue(source, JobOptions(formats=("txt",)), "test")
    job = store.claim("w1")
    assert job is not None
    spans = split_spans(str(source), SPLIT.piece_s)
    options = job.options.model_copy(update={"language": "en"})
    pieces = store.add_pieces(job.id, job.attempts, spans, options, source.stat().st_ino)
    # A worker took the first piece and died: its lease ran out.
    lost = store.claim("gone", piece_of=parent.id)
    assert lost is not None and lost.id == pieces[0].id
    store.fail(lost.id, lost.attempts, "lease expired: worker gone stopped answering")
    run_job(store, engine, job, Confinement.of([tmp_path]), split=SPLIT)
    done = store.get(parent.id)
    assert done.status is JobStatus.DONE, done.error
    assert done.attempts == 1  # the file was not started over


def test_a_piece_that_fails_for_good_fails_the_file(
    store: JobStore, engine: Engine, paragraph: Path, tmp_path: Path
) -> None:
    source = _copy(paragraph, tmp_path)
    parent, _ = store.enqueue(source, JobOptions(formats=("txt",)), "test")
    job = store.claim("w1")
    assert job is not None
    spans = split_spans(str(source), SPLIT.piece_s)
    store.add_pieces(job.id, job.attempts, spans, job.options.model_copy(update={"language": "en"}))
    piece = store.claim("w2", piece_of=parent.id)
    assert piece is not None
    store.fail(piece.id, piece.attempts, "cannot decode: broken", retryable=False)
    run_job(store, engine, job, Confinement.of([tmp_path]), split=SPLIT)
    failed = store.get(parent.id)
    assert failed.status is JobStatus.FAILED
    assert "piece 1 of" in (failed.error or "") and "cannot decode: broken" in (failed.error or "")
    assert store.pieces(parent.id) == []
    assert not (source.parent / "talk.txt").exists()


def test_cancelling_the_file_removes_its_pieces_and_stops_its_worker(
    store: JobStore, engine: Engine, paragraph: Path, tmp_path: Path
) -> None:
    source = _copy(paragraph, tmp_path)
    parent, _ = store.enqueue(source, JobOptions(formats=("txt",)), "test")
    job = store.claim("w1")
    assert job is not None
    runner = threading.Thread(
        target=run_job,
        args=(store, engine, job, Confinement.of([tmp_path])),
        kwargs={"split": SPLIT},
    )
    runner.start()
    wait_until(lambda: len(store.pieces(parent.id)) > 0, 120, "the file to be split")
    store.cancel(parent.id)
    runner.join(120)
    assert not runner.is_alive()
    assert store.get(parent.id).status is JobStatus.CANCELLED
    assert store.pieces(parent.id) == []
    assert not (source.parent / "talk.txt").exists()


def test_a_short_file_is_not_split(
    store: JobStore, engine: Engine, paragraph: Path, tmp_path: Path
) -> None:
    source = _copy(paragraph, tmp_path)
    parent, _ = store.enqueue(source, JobOptions(formats=("txt",)), "test")
    job = store.claim("w1")
    assert job is not None
    seen: list[int] = []
    watcher_stop = threading.Event()

    def watch() -> None:
        while not watcher_stop.is_set():
            seen.append(len(store.pieces(parent.id)))
            watcher_stop.wait(0.05)

    spy = threading.Thread(target=watch)
    spy.start()
    run_job(store, engine, job, Confinement.of([tmp_path]), split=SplitRules(after_s=600.0))
    watcher_stop.set()
    spy.join()
    assert store.get(parent.id).status is JobStatus.DONE
    assert max(seen, default=0) == 0


def _split_and_requeued(store: JobStore, source: Path) -> tuple[int, list[int]]:
    """A file's job split into pieces, then back in the queue (its worker died): its pieces stay."""
    parent, _ = store.enqueue(source, JobOptions(formats=("txt",)), "test")
    job = store.claim("w1")
    assert job is not None and job.id == parent.id
    spans = split_spans(str(source), SPLIT.piece_s)
    options = job.options.model_copy(update={"language": "en"})
    pieces = store.add_pieces(job.id, job.attempts, spans, options, source.stat().st_ino)
    return parent.id, [piece.id for piece in pieces]


def test_pieces_are_not_jobs_of_their_own_for_people(
    store: JobStore, paragraph: Path, tmp_path: Path
) -> None:
    source = _copy(paragraph, tmp_path)
    parent_id, piece_ids = _split_and_requeued(store, source)
    piece = store.claim("w2", piece_of=parent_id)
    assert piece is not None and piece.id == piece_ids[0]
    store.complete(piece.id, piece.attempts, Transcript("en", 1.0, 12.0, ()))
    # Cancel, retry, run again: the file's job's to do, not a piece's.
    for action in (store.cancel, store.retry, store.run_again):
        with pytest.raises(InvalidTransition, match=f"a piece of job {parent_id}"):
            action(piece_ids[1])
    # Their audio and time are counted once, in their file's transcript.
    assert store.stats().audio_s == 0.0
    assert store.stats().jobs[JobStatus.QUEUED] == 0  # the pieces; the file is running
    assert store.stats().jobs[JobStatus.RUNNING] == 1


def test_a_file_changed_while_its_job_waits_ends_its_pieces(
    store: JobStore, paragraph: Path, tmp_path: Path
) -> None:
    source = _copy(paragraph, tmp_path)
    parent_id, piece_ids = _split_and_requeued(store, source)
    store.fail(parent_id, 1, "worker process died (exit code -9)")  # back in the queue
    assert len(store.pieces(parent_id)) == len(piece_ids)
    with source.open("ab") as grown:
        grown.write(b"\0" * 3200)
    _, created = store.enqueue(source, JobOptions(formats=("txt",)), "test")
    assert created
    assert store.get(parent_id).status is JobStatus.CANCELLED
    assert store.pieces(parent_id) == []


def test_a_piece_does_not_read_a_file_put_in_place_of_the_one_split(
    store: JobStore, engine: Engine, paragraph: Path, tmp_path: Path
) -> None:
    source = _copy(paragraph, tmp_path)
    parent_id, _ = _split_and_requeued(store, source)
    stat = source.stat()
    impostor = source.with_name("impostor.wav")
    original = source.read_bytes()
    impostor.write_bytes(original[:44] + bytes(reversed(original[44:])))  # its header, other audio
    os.utime(impostor, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(impostor, source)  # the same size and time, other bytes
    piece = store.claim("w2", piece_of=parent_id)
    assert piece is not None
    run_job(store, engine, piece, Confinement.of([tmp_path]))
    failed = store.get(piece.id)
    assert failed.status is JobStatus.FAILED
    assert "replaced while its pieces were transcribed" in (failed.error or "")
