"""No transcript is ever written over another source's: two sources with one stem, two uploads of
one name, a link named unlike its target, a done/ folder where the name is taken, two videos with
one stem in a media library; names up to the file system's limit; names no database can hold.

The jobs run through the real model in this process, on a real SQLite file and the real
PostgreSQL; the file names are checked on real folders."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from tests.helpers.inboxes import SETTLE_S, WAIT_S, enqueue_and_claim, inbox_for, watching
from tests.helpers.media import FIXTURES, make_video, place
from tests.helpers.waiting import wait_until
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.transcript import Segment, Transcript
from whisper_transcriber.db.values import JobOptions, JobQuery, JobRecord
from whisper_transcriber.watcher.spec import Inbox
from whisper_transcriber.worker.confinement import Confinement
from whisper_transcriber.worker.engine import Engine
from whisper_transcriber.worker.job_runner import run_job
from whisper_transcriber.worker.originals import move_original
from whisper_transcriber.worker.outputs import OutputNameError
from whisper_transcriber.worker.staging import stage_outputs

SPEECH_A = FIXTURES / "speech_a.wav"  # "Welcome to the museum, ..."
SPEECH_B = FIXTURES / "speech_b.flac"  # "Please send the quarterly report ..."
TRANSCRIPT = Transcript("en", 0.99, 2.0, (Segment(id=0, start=0.0, end=2.0, text=" Hello."),))


def names_in(folder: Path) -> list[str]:
    """Every name in folder, hidden ones (temporaries) included."""
    return sorted(os.listdir(folder))


def run(store: JobStore, engine: Engine, path: Path, options: JobOptions, origin: str) -> JobRecord:
    """A job for path (API, upload or CLI style), claimed and run as a worker would."""
    job, created = store.enqueue(path, options, origin)
    assert created
    claimed = store.claim("test-worker")
    assert claimed is not None and claimed.id == job.id
    run_job(store, engine, claimed, Confinement.of([path.parent.parent]))
    return store.get(job.id)


def enqueue_and_run(
    store: JobStore, engine: Engine, inbox: Inbox, path: Path, *allowed: Path
) -> JobRecord:
    """What the intake records for the file, run as a worker would (allowed: link roots)."""
    claimed = enqueue_and_claim(store, inbox, path)
    run_job(store, engine, claimed, Confinement.of([inbox.root, *allowed]))
    return store.get(claimed.id)


def touch(path: Path) -> None:
    """A new version of the file (same bytes, a later mtime): a job of its own."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def says(path: Path, word: str) -> bool:
    return word in path.read_text(encoding="utf-8").lower()


# -- one folder, two sources with one stem ---------------------------------------------------


def test_two_sources_with_one_stem_keep_their_own_transcripts_and_names(
    store: JobStore, engine: Engine, tmp_path: Path
) -> None:
    inbox = inbox_for(f"{tmp_path / 'inbox'}?formats=txt+srt")
    wav = place(SPEECH_A, inbox.root, "talk.wav")
    flac = place(SPEECH_B, inbox.root, "talk.flac")

    first = enqueue_and_run(store, engine, inbox, wav)
    second = enqueue_and_run(store, engine, inbox, flac)
    folder = inbox.root
    assert first.outputs == (str(folder / "talk.txt"), str(folder / "talk.srt"))
    # One number for the whole set, recorded on the job.
    assert second.outputs == (str(folder / "talk (2).txt"), str(folder / "talk (2).srt"))
    assert says(folder / "talk.txt", "museum") and says(folder / "talk (2).txt", "report")

    # Run again (a new version): the same names, its own files replaced, the other's untouched.
    wav_transcript = (folder / "talk.txt").stat()
    (folder / "talk (2).txt").write_text("stale")
    touch(flac)
    again = enqueue_and_run(store, engine, inbox, flac)
    assert again.outputs == second.outputs
    assert says(folder / "talk (2).txt", "report")
    assert (folder / "talk.txt").stat().st_mtime_ns == wav_transcript.st_mtime_ns

    # The other source and its transcripts gone: still the names it had (deterministic).
    for name in ("talk.wav", "talk.txt", "talk.srt"):
        (folder / name).unlink()
    touch(flac)
    once_more = enqueue_and_run(store, engine, inbox, flac)
    assert once_more.outputs == second.outputs
    assert names_in(folder) == ["talk (2).srt", "talk (2).txt", "talk.flac"]


def test_a_taken_name_numbers_every_format_of_the_job_alike(tmp_path: Path) -> None:
    notes = tmp_path / "talk.txt"
    notes.write_text("my own notes")
    published = stage_outputs(
        TRANSCRIPT, tmp_path / "talk.wav", ["txt", "srt", "vtt"], None
    ).publish()
    assert [p.name for p in published] == ["talk (2).txt", "talk (2).srt", "talk (2).vtt"]
    assert notes.read_text() == "my own notes"
    assert names_in(tmp_path) == ["talk (2).srt", "talk (2).txt", "talk (2).vtt", "talk.txt"]


def test_a_number_whose_names_are_partly_taken_is_skipped(tmp_path: Path) -> None:
    for name in ("talk.txt", "talk (2).srt"):
        (tmp_path / name).write_text("someone else's")
    published = stage_outputs(TRANSCRIPT, tmp_path / "talk.wav", ["txt", "srt"], None).publish()
    assert [p.name for p in published] == ["talk (3).txt", "talk (3).srt"]
    assert all((tmp_path / n).read_text() == "someone else's" for n in ("talk.txt", "talk (2).srt"))


# -- uploads of one name into one output_dir -------------------------------------------------


def test_two_uploads_of_one_name_into_one_output_dir(
    store: JobStore, engine: Engine, tmp_path: Path
) -> None:
    uploads, out = tmp_path / "uploads", tmp_path / "out"
    first_upload = place(SPEECH_A, uploads / "3f2a", "talk.wav")  # as api/uploads.py lays them
    second_upload = place(SPEECH_B, uploads / "9c1d", "talk.wav")
    options = JobOptions(formats=("txt", "json"), output_dir=str(out))

    first = run(store, engine, first_upload, options, "upload")
    second = run(store, engine, second_upload, options, "upload")
    assert first.outputs == (str(out / "talk.txt"), str(out / "talk.json"))
    assert second.outputs == (str(out / "talk (2).txt"), str(out / "talk (2).json"))
    assert says(out / "talk.txt", "museum") and says(out / "talk (2).txt", "report")
    assert names_in(out) == ["talk (2).json", "talk (2).txt", "talk.json", "talk.txt"]


# -- links -----------------------------------------------------------------------------------


def test_a_link_is_named_after_itself_not_after_its_target(
    store: JobStore, engine: Engine, tmp_path: Path
) -> None:
    library = tmp_path / "library"
    target = place(SPEECH_B, library, "talk.flac")
    inbox = inbox_for(f"{tmp_path / 'inbox'}?formats=txt")
    plain = place(SPEECH_A, inbox.root, "talk.wav")
    link = inbox.root / "report.flac"
    link.symlink_to(target)

    linked = enqueue_and_run(store, engine, inbox, link, library)
    own = enqueue_and_run(store, engine, inbox, plain)
    assert linked.source_path == str(target)  # the job is the target's
    assert linked.outputs == (str(inbox.root / "report.txt"),)
    assert own.outputs == (str(inbox.root / "talk.txt"),)
    assert says(inbox.root / "report.txt", "report") and says(inbox.root / "talk.txt", "museum")
    assert names_in(library) == ["talk.flac"]


def test_a_linked_video_gets_the_sidecar_name_of_the_link(
    store: JobStore, engine: Engine, tmp_path: Path
) -> None:
    download = make_video(tmp_path / "downloads" / "movie.2020.1080p.web.mkv")
    films = tmp_path / "films"
    link = films / "Movie (2020)" / "Movie (2020).mkv"
    link.parent.mkdir(parents=True)
    link.symlink_to(download)
    inbox = inbox_for(f"{films}?media_library=true")
    job = enqueue_and_run(store, engine, inbox, link, download.parent)
    assert job.status is JobStatus.DONE, job.error
    assert job.outputs == (str(link.parent / "Movie (2020).en.srt"),)
    assert names_in(link.parent) == ["Movie (2020).en.srt", "Movie (2020).mkv"]
    assert names_in(download.parent) == [download.name]


def test_named_after_is_a_bare_file_name() -> None:
    for bad in ("../x.wav", "a/b.wav", "..", ""):
        with pytest.raises(ValueError, match="named_after must be a file name"):
            JobOptions(named_after=bad)


# -- originals moved into done/ --------------------------------------------------------------


@pytest.mark.parametrize("outbox", [False, True], ids=["beside-in-done", "outbox"])
def test_a_new_file_of_a_name_done_already_has_keeps_both_sets(
    store: JobStore, engine: Engine, tmp_path: Path, outbox: bool
) -> None:
    root, done, out = tmp_path / "inbox", tmp_path / "inbox" / "done", tmp_path / "out"
    spec = f"{root}?on_success=move&formats=txt" + (f"&outbox={out}" if outbox else "")
    inbox = inbox_for(spec)
    transcripts = out if outbox else done

    first = enqueue_and_run(store, engine, inbox, place(SPEECH_A, root, "talk.wav"))
    assert first.original_moved_to == str(done / "talk.wav")
    assert first.outputs == (str(transcripts / "talk.txt"),)

    # Another recording under the same name: the first one's original and transcript stay.
    second = enqueue_and_run(store, engine, inbox, place(SPEECH_B, root, "talk.wav"))
    assert second.status is JobStatus.DONE, second.error
    assert second.outputs == (str(transcripts / "talk (2).txt"),)
    assert second.original_moved_to == str(done / "talk (2).wav")
    assert says(transcripts / "talk.txt", "museum")
    assert says(transcripts / "talk (2).txt", "report")
    assert (done / "talk.wav").read_bytes() == SPEECH_A.read_bytes()
    assert (done / "talk (2).wav").read_bytes() == SPEECH_B.read_bytes()
    assert names_in(root) == ["done"]


def test_a_move_never_replaces_what_is_at_the_name_not_even_a_dangling_link(
    store: JobStore, tmp_path: Path
) -> None:
    source = place(SPEECH_A, tmp_path / "inbox", "talk.wav")
    done = tmp_path / "inbox" / "done"
    done.mkdir()
    (done / "talk.wav").symlink_to(tmp_path / "nowhere.wav")
    store.enqueue(source, JobOptions(), "inbox:test", move_on_done=done / "talk.wav")
    claimed = store.claim("test-worker")
    assert claimed is not None
    finished = store.complete(claimed.id, claimed.attempts, TRANSCRIPT)
    assert move_original(store, finished) == done / "talk (2).wav"
    assert (done / "talk.wav").is_symlink()
    assert os.readlink(done / "talk.wav") == str(tmp_path / "nowhere.wav")
    assert (done / "talk (2).wav").read_bytes() == SPEECH_A.read_bytes()
    assert store.get(claimed.id).original_moved_to == str(done / "talk (2).wav")


# -- media libraries: sidecar names or nothing -----------------------------------------------


def test_two_videos_with_one_stem_never_overwrite_each_others_sidecars(
    store: JobStore, engine: Engine, tmp_path: Path
) -> None:
    films = tmp_path / "films"
    mkv = make_video(films / "Movie.mkv")
    mp4 = make_video(films / "Movie.mp4")
    txt_only = inbox_for(f"{films}?media_library=true&formats=txt")
    srt_and_txt = inbox_for(f"{films}?media_library=true&formats=srt+txt")

    first = enqueue_and_run(store, engine, txt_only, mkv)
    assert first.outputs == (str(films / "Movie.en.txt"),)
    (films / "Movie.en.txt").write_text("Movie.mkv's words\n")

    # Movie.en.txt is Movie.mkv's: no "Movie.en (2).txt" (no media server would find it).
    second = enqueue_and_run(store, engine, srt_and_txt, mp4)
    assert second.status is JobStatus.DONE, second.error
    assert second.outputs == (str(films / "Movie.en.srt"),)
    assert second.note == (
        "not written: Movie.en.txt already exists, not made for this video (Movie.mkv has the "
        "same name); the transcript is in the database"
    )
    assert store.transcript(second.id) is not None
    assert (films / "Movie.en.txt").read_text() == "Movie.mkv's words\n"

    # Movie.mkv again: the subtitle there now is Movie.mp4's, so it is skipped, saying why.
    touch(mkv)
    third = enqueue_and_run(store, engine, srt_and_txt, mkv)
    assert (
        third.note == "skipped: Movie.en.srt already has en subtitles (Movie.mp4 has the same name)"
    )
    assert store.transcript(third.id) is None

    # Movie.mp4 again: its own Movie.en.srt is replaced, not a reason to skip.
    (films / "Movie.en.srt").write_text("an older run's\n")
    touch(mp4)
    fourth = enqueue_and_run(store, engine, srt_and_txt, mp4)
    assert fourth.outputs == (str(films / "Movie.en.srt"),)
    assert "-->" in (films / "Movie.en.srt").read_text()
    assert fourth.note == second.note
    assert names_in(films) == ["Movie.en.srt", "Movie.en.txt", "Movie.mkv", "Movie.mp4"]


def test_sidecar_formats_whose_names_are_held_are_withheld_not_numbered(tmp_path: Path) -> None:
    (tmp_path / "Movie.en.vtt").write_text("someone else's")
    staged = stage_outputs(TRANSCRIPT, tmp_path / "Movie.mkv", ["srt", "vtt"], None, "en")
    assert staged.withheld == {"vtt": tmp_path / "Movie.en.vtt"}
    assert [p.name for p in staged.publish()] == ["Movie.en.srt"]
    assert names_in(tmp_path) == ["Movie.en.srt", "Movie.en.vtt"]
    assert (tmp_path / "Movie.en.vtt").read_text() == "someone else's"


# -- names the file system or the job cannot have --------------------------------------------


def test_names_up_to_the_file_systems_limit_work(
    store: JobStore, engine: Engine, tmp_path: Path
) -> None:
    source = place(SPEECH_A, tmp_path / "media", "x" * 250 + ".wav")  # ".json": 255 bytes
    job = run(store, engine, source, JobOptions(), "api")
    assert job.status is JobStatus.DONE, job.error
    assert [Path(p).name for p in job.outputs] == ["x" * 250 + f".{f}" for f in job.options.formats]
    assert max(len(Path(p).name) for p in job.outputs) == 255
    assert len(names_in(source.parent)) == 6  # no temporaries left


def test_a_name_too_long_fails_at_once_with_its_reason(
    store: JobStore, engine: Engine, tmp_path: Path
) -> None:
    source = place(SPEECH_A, tmp_path / "media", "x" * 251 + ".wav")  # ".json" would be 256
    job = run(store, engine, source, JobOptions(formats=("txt", "json")), "api")
    assert job.status is JobStatus.FAILED
    assert job.attempts == 1  # not retried
    assert "json transcript's name" in (job.error or "")
    assert "would be 256 bytes long" in (job.error or "")
    assert "may have at most 255: give the source a shorter name" in (job.error or "")
    assert names_in(source.parent) == [source.name]


def test_a_numbered_name_too_long_fails_at_once_and_leaves_the_other_file(
    store: JobStore, engine: Engine, tmp_path: Path
) -> None:
    source = place(SPEECH_A, tmp_path / "media", "x" * 249 + ".wav")
    theirs = source.with_name("x" * 249 + ".txt")  # 253 bytes; "... (2).txt" would be 257
    theirs.write_text("someone else's")
    job = run(store, engine, source, JobOptions(formats=("txt",)), "api")
    assert job.status is JobStatus.FAILED and job.attempts == 1
    assert "belongs to another file" in (job.error or "")
    assert "would be 257 bytes long, more than the 255 allowed there" in (job.error or "")
    assert store.transcript(job.id) is None
    assert theirs.read_text() == "someone else's"
    assert names_in(source.parent) == sorted([source.name, theirs.name])


def test_an_output_that_would_overwrite_its_source_fails_at_once(
    store: JobStore, engine: Engine, tmp_path: Path
) -> None:
    source = place(SPEECH_A, tmp_path / "media", "speech.srt")  # audio, named like a subtitle
    before = source.read_bytes()
    job = run(store, engine, source, JobOptions(language="en", formats=("srt",)), "api")
    assert job.status is JobStatus.FAILED and job.attempts == 1
    assert job.error == f"the srt output would overwrite its source {source}: nothing was written"
    assert source.read_bytes() == before
    assert names_in(source.parent) == ["speech.srt"]


def test_output_name_errors_are_value_errors_raised_before_anything_is_written(
    tmp_path: Path,
) -> None:
    with pytest.raises(OutputNameError, match="would be 256 bytes long"):
        stage_outputs(TRANSCRIPT, tmp_path / ("y" * 251 + ".wav"), ["txt", "json"], tmp_path / "o")
    assert names_in(tmp_path / "o") == []
    assert issubclass(OutputNameError, ValueError)


# -- names that are not UTF-8 ----------------------------------------------------------------


def test_a_name_that_is_not_utf8_is_refused_once_and_never_loops(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    odd_name = os.fsdecode(b"caf\xe9.wav")  # Latin-1 from an SMB share
    caplog.set_level(logging.WARNING, logger="whisper_transcriber.watcher.intake")

    def refusals() -> list[str]:
        return [r.getMessage() for r in caplog.records if "not valid UTF-8" in r.getMessage()]

    with watching(database_url, inbox, settle_s=SETTLE_S) as (watcher, store):
        before = watcher.settled
        odd = place(SPEECH_A, inbox, odd_name)
        place(SPEECH_B, inbox, "café.flac")
        wait_until(lambda: watcher.settled >= before + 2, WAIT_S, "both files to settle")
        assert watcher.tracker.pending() == 0  # handed over once, not marked again
        jobs = store.list_jobs(JobQuery(), 100)
        assert [Path(job.source_path).name for job in jobs] == ["café.flac"]
        assert refusals() == [
            f"not taken: {inbox.resolve()}/caf\\xe9.wav: the name is not valid UTF-8 (a name in "
            "another character set, as SMB shares and old archives have), and the job database "
            "stores names as UTF-8; give it a UTF-8 name (for example with convmv -f latin1 -t "
            "utf-8) and it is taken"
        ]
        # Rescans and further events of the same file: nothing new, nothing said again.
        assert watcher.rescan() == 0
        assert watcher.intake.take(odd) is None
        assert len(refusals()) == 1

        # A new version of it is told once more; renamed to UTF-8 it is taken.
        with odd.open("ab") as file:
            file.write(b"\0" * 64)
        wait_until(lambda: len(refusals()) == 2, WAIT_S, "the new version's refusal")
        odd.rename(inbox / "cafe.wav")
        wait_until(lambda: len(store.list_jobs(JobQuery(), 100)) == 2, WAIT_S, "cafe.wav's job")
        assert len(refusals()) == 2
        assert watcher.tracker.pending() == 0
