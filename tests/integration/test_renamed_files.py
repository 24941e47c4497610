"""Renamed speakers written into the files a job published (worker/renamed_files.py), on both
databases: every format rewritten as the API renders it; and only a file that still holds what
the job wrote: an edited file, a link put in its place, a fifo, a folder swapped for a link and
a file changed while the rewrite ran all keep what they have. A rename during a rewrite wins."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import pytest

from tests.helpers.media import FIXTURES
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.speaker_names import SpeakerNames
from whisper_transcriber.db.transcript import Segment, Transcript, Word
from whisper_transcriber.db.values import OUTPUT_FORMATS, JobOptions
from whisper_transcriber.worker import renamed_files
from whisper_transcriber.worker.outputs import rendered
from whisper_transcriber.worker.renamed_files import RenamedFiles, rewrite_renamed
from whisper_transcriber.worker.staging import TEMPORARY_PREFIX, stage_outputs


def labelled(n: int) -> Segment:
    speaker = f"Speaker {n % 3 + 1}"
    words = (
        Word(float(n), n + 0.5, " Line", 0.9, speaker),
        Word(n + 0.5, n + 1.0, f" {n}.", 0.9, speaker),
    )
    return Segment(n, float(n), n + 1.0, f" Line {n}.", words=words, speaker=speaker)


TRANSCRIPT = Transcript("en", 1.0, 6.0, tuple(labelled(n) for n in range(6)))
OPTIONS = JobOptions(diarize=True, formats=OUTPUT_FORMATS)  # with subtitle rules, words kept


def render(transcript: Transcript, fmt: str) -> str:
    """As the job's files are rendered."""
    return rendered(transcript, fmt, OPTIONS)


def published_job(store: JobStore, folder: Path) -> tuple[int, dict[str, Path]]:
    """A done job of three speakers whose five files were published as a worker publishes them."""
    source = Path(shutil.copy(FIXTURES / "speech_a.wav", folder))
    job, _ = store.enqueue(source, OPTIONS, "api")
    claimed = store.claim("w")
    assert claimed is not None
    staged = stage_outputs(TRANSCRIPT, source, OUTPUT_FORMATS, None, options=OPTIONS)
    done = store.complete(job.id, claimed.attempts, TRANSCRIPT, publish=staged.publish)
    return job.id, {Path(p).suffix[1:]: Path(p) for p in done.outputs}


def as_api_renders(store: JobStore, job_id: int, fmt: str) -> str:
    stored = store.transcript(job_id)
    assert stored is not None
    return render(stored.named(), fmt)


def test_every_file_is_rewritten_with_the_names_and_back(store: JobStore, tmp_path: Path) -> None:
    job_id, files = published_job(store, tmp_path)
    files["srt"].chmod(0o640)
    names = SpeakerNames(store)
    assert not names.files_outdated(job_id) and rewrite_renamed(store) == []

    names.rename(job_id, {"Speaker 1": "Ada", "Speaker 3": "Tom & Jerry"})
    assert names.files_outdated(job_id)
    assert rewrite_renamed(store) == [job_id]
    assert not names.files_outdated(job_id)
    for fmt, path in files.items():
        assert path.read_text() == as_api_renders(store, job_id, fmt), fmt
    assert files["txt"].read_text().startswith("Ada: Line 0.\n")
    assert "<v Tom &amp; Jerry>" in files["vtt"].read_text()
    assert '"speaker": "Ada"' in files["json"].read_text()  # the words' too
    assert (files["srt"].stat().st_mode & 0o777) == 0o640  # the mode it had
    assert rewrite_renamed(store) == []  # nothing more to do
    assert not any(p.name.startswith(TEMPORARY_PREFIX) for p in tmp_path.iterdir())

    names.rename(job_id, {"Speaker 1": "", "Speaker 3": ""})  # the labels back
    assert rewrite_renamed(store) == [job_id]
    for fmt, path in files.items():
        assert path.read_text() == render(TRANSCRIPT, fmt), fmt


def test_only_files_that_hold_what_the_job_wrote_are_rewritten(
    store: JobStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    job_id, files = published_job(store, tmp_path)
    files["txt"].write_text("my own notes\n")  # edited by hand: kept
    outside = tmp_path / "elsewhere.srt"
    outside.write_text(files["srt"].read_text())
    files["srt"].unlink()
    files["srt"].symlink_to(outside)  # a link in its place: not followed
    files["tsv"].unlink()
    os.mkfifo(files["tsv"])  # a fifo: not opened for reading (it would block)
    files["json"].unlink()  # gone: stays gone
    os.chown(files["vtt"], 65534, 65534)  # the same bytes, another user's file: not ours
    files["srt"].with_suffix(".other").write_text("")  # not a format: never looked at
    caplog.set_level(logging.WARNING, renamed_files.__name__)

    SpeakerNames(store).rename(job_id, {"Speaker 2": "Grace"})
    assert rewrite_renamed(store) == [job_id]
    assert files["txt"].read_text() == "my own notes\n"
    assert outside.read_text() == render(TRANSCRIPT, "srt") and files["srt"].is_symlink()
    assert not files["json"].exists()
    assert files["vtt"].read_text() == render(TRANSCRIPT, "vtt")
    kept = {suffix for suffix in (".txt", ".srt", ".tsv", ".json", ".vtt") if suffix in caplog.text}
    assert kept == {".txt", ".srt", ".tsv", ".json", ".vtt"}, caplog.text
    assert not SpeakerNames(store).files_outdated(job_id)  # what could be done, was


def test_set_id_bits_are_not_kept_and_old_temporaries_are_removed(
    store: JobStore, tmp_path: Path
) -> None:
    job_id, files = published_job(store, tmp_path)
    files["txt"].chmod(0o6755)
    stale = tmp_path / f"{renamed_files.REWRITE_PREFIX}0123abcd.tmp"  # a killed pass's
    fresh = tmp_path / f"{renamed_files.REWRITE_PREFIX}4567ef01.tmp"  # maybe another's, now
    for temporary in (stale, fresh):
        temporary.write_text("Speaker 1: ...")
    long_ago = time.time() - renamed_files.STALE_TEMPORARY_S - 60
    os.utime(stale, (long_ago, long_ago))

    SpeakerNames(store).rename(job_id, {"Speaker 1": "Ada"})
    assert rewrite_renamed(store) == [job_id]
    assert files["txt"].read_text().startswith("Ada: ")
    assert files["txt"].stat().st_mode & 0o7777 == 0o755
    assert not stale.exists() and fresh.exists()


def test_a_folder_out_of_reach_keeps_the_job_pending_and_later_jobs_go_on(
    store: JobStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    share, other = tmp_path / "share", tmp_path / "other"
    share.mkdir()
    other.mkdir()
    first, first_files = published_job(store, share)
    second, second_files = published_job(store, other)
    names = SpeakerNames(store)
    names.rename(first, {"Speaker 1": "Ada"})
    names.rename(second, {"Speaker 1": "Bob"})
    share.rename(tmp_path / "unmounted")  # a NAS share away for a while

    renamed = RenamedFiles(store)
    assert renamed.rewrite_renamed_files() == [second]
    assert names.files_outdated(first) and not names.files_outdated(second)
    assert second_files["txt"].read_text().startswith("Bob: ")
    assert renamed.rewrite_renamed_files() == []  # not every pass: later, less and less often
    assert caplog.text.count("its files wait for their names") == 1

    (tmp_path / "unmounted").rename(share)
    assert rewrite_renamed(store) == [first]  # as another instance, or this one later
    assert first_files["txt"].read_text().startswith("Ada: ")


def test_a_file_that_cannot_be_replaced_leaves_the_job_pending_not_the_others(
    store: JobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, first_files = published_job(store, tmp_path / "a")
    second, _ = published_job(store, tmp_path / "b")
    names = SpeakerNames(store)
    names.rename(first, {"Speaker 1": "Ada"})
    names.rename(second, {"Speaker 1": "Bob"})
    publish = renamed_files._publish

    def temporaries_taken_away(rewrites: list[renamed_files._Rewrite]) -> bool:
        if rewrites and rewrites[0].job_id == first:  # someone removes them as they appear
            for rewrite in rewrites:
                assert rewrite.temporary is not None
                os.unlink(rewrite.temporary, dir_fd=rewrite.folder_fd)
        return publish(rewrites)

    monkeypatch.setattr(renamed_files, "_publish", temporaries_taken_away)
    assert rewrite_renamed(store) == [second]
    assert names.files_outdated(first)
    assert first_files["txt"].read_text() == render(TRANSCRIPT, "txt")
    monkeypatch.setattr(renamed_files, "_publish", publish)
    assert rewrite_renamed(store) == [first]
    assert first_files["txt"].read_text().startswith("Ada: ")


def test_a_pass_that_lost_a_race_with_another_records_nothing(
    store: JobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Instance A stages "Ada"; meanwhile the speaker is renamed Bob, instance B writes Bob, and
    the name goes back to Ada. A must not record Ada over files that show Bob."""
    job_id, files = published_job(store, tmp_path)
    names = SpeakerNames(store)
    names.rename(job_id, {"Speaker 1": "Ada"})
    stage = renamed_files._stage
    raced: list[bool] = []

    def another_instance_between(*args: object) -> renamed_files._Rewrite | None:
        staged = stage(*args)  # type: ignore[arg-type]
        if not raced:
            raced.append(True)
            names.rename(job_id, {"Speaker 1": "Bob"})
            assert rewrite_renamed(store) == [job_id]  # B, whole
            names.rename(job_id, {"Speaker 1": "Ada"})
        return staged

    monkeypatch.setattr(renamed_files, "_stage", another_instance_between)
    assert rewrite_renamed(store) == []  # A: nothing recorded
    assert files["txt"].read_text().startswith("Bob: ")
    monkeypatch.setattr(renamed_files, "_stage", stage)
    assert rewrite_renamed(store) == [job_id]
    for fmt, path in files.items():
        assert path.read_text() == as_api_renders(store, job_id, fmt), fmt


def test_files_a_newer_job_of_the_source_published_are_its_own(
    store: JobStore, tmp_path: Path
) -> None:
    job_id, files = published_job(store, tmp_path)
    SpeakerNames(store).rename(job_id, {"Speaker 1": "Ada"})
    newer, _ = store.enqueue(files["txt"].with_suffix(".wav"), OPTIONS, "api", force=True)
    claimed = store.claim("w")
    assert claimed is not None and claimed.id == newer.id
    staged = stage_outputs(TRANSCRIPT, files["txt"].with_suffix(".wav"), OUTPUT_FORMATS, None,
                           ours={str(p) for p in files.values()}, options=OPTIONS)  # fmt: skip
    store.complete(newer.id, claimed.attempts, TRANSCRIPT, publish=staged.publish)
    assert set(store.get(newer.id).outputs) == {str(p) for p in files.values()}

    assert rewrite_renamed(store) == [job_id]
    for fmt, path in files.items():
        assert path.read_text() == render(TRANSCRIPT, fmt), fmt  # the newer job's labels


def test_a_folder_swapped_for_a_link_is_not_written_through(
    store: JobStore, tmp_path: Path
) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    job_id, files = published_job(store, folder)
    elsewhere = tmp_path / "private"
    folder.rename(elsewhere)
    target = tmp_path / "target"
    target.mkdir()
    for path in files.values():  # the same names, the same bytes, behind a link
        shutil.copy(elsewhere / path.name, target / path.name)
    folder.symlink_to(target)

    SpeakerNames(store).rename(job_id, {"Speaker 1": "Ada"})
    assert rewrite_renamed(store) == [job_id]
    for fmt, path in files.items():
        assert (target / path.name).read_text() == render(TRANSCRIPT, fmt)


def test_a_file_changed_while_being_rewritten_keeps_the_change(
    store: JobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, files = published_job(store, tmp_path)
    names = SpeakerNames(store)
    names.rename(job_id, {"Speaker 1": "Ada"})
    publish = renamed_files._publish

    def edited_first(rewrites: list[renamed_files._Rewrite]) -> None:
        files["txt"].write_text("edited meanwhile\n")
        publish(rewrites)

    monkeypatch.setattr(renamed_files, "_publish", edited_first)
    assert rewrite_renamed(store) == []  # the others placed; recorded once all are compared
    assert files["txt"].read_text() == "edited meanwhile\n"
    assert files["vtt"].read_text() == as_api_renders(store, job_id, "vtt")
    monkeypatch.setattr(renamed_files, "_publish", publish)
    assert rewrite_renamed(store) == [job_id]  # the edit is the person's: kept
    assert files["txt"].read_text() == "edited meanwhile\n"
    assert not any(p.name.startswith(TEMPORARY_PREFIX) for p in tmp_path.iterdir())


def test_a_rename_during_a_rewrite_is_written_by_the_next(
    store: JobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, files = published_job(store, tmp_path)
    names = SpeakerNames(store)
    names.rename(job_id, {"Speaker 1": "Ada"})
    stage = renamed_files._stage

    def renamed_meanwhile(*args: object) -> renamed_files._Rewrite | None:
        SpeakerNames(store).rename(job_id, {"Speaker 1": "Ann"})
        return stage(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(renamed_files, "_stage", renamed_meanwhile)
    assert rewrite_renamed(store) == []  # staged "Ada", published nothing
    assert files["txt"].read_text() == render(TRANSCRIPT, "txt")
    assert names.files_outdated(job_id)
    monkeypatch.setattr(renamed_files, "_stage", stage)
    assert rewrite_renamed(store) == [job_id]
    assert files["txt"].read_text().startswith("Ann: ")
    assert not any(p.name.startswith(TEMPORARY_PREFIX) for p in tmp_path.iterdir())


def test_files_already_rewritten_but_not_recorded_are_recorded(
    store: JobStore, tmp_path: Path
) -> None:
    """A pass killed after publishing, before recording: the next finds the files done."""
    job_id, files = published_job(store, tmp_path)
    names = SpeakerNames(store)
    names.rename(job_id, {"Speaker 2": "Grace"})
    for fmt, path in files.items():
        path.write_text(as_api_renders(store, job_id, fmt))
    before = {path: path.stat().st_mtime_ns for path in files.values()}
    assert rewrite_renamed(store) == [job_id]
    assert {path: path.stat().st_mtime_ns for path in files.values()} == before
    assert not names.files_outdated(job_id)
