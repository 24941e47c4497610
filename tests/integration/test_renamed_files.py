"""Renamed speakers written into the files a job published (worker/renamed_files.py), on both
databases: every format rewritten as the API renders it; and only a file that still holds what
the job wrote: an edited file, a link put in its place, a fifo, a folder swapped for a link and
a file changed while the rewrite ran all keep what they have. A rename during a rewrite wins."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers.media import FIXTURES
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.speaker_names import SpeakerNames
from whisper_transcriber.db.transcript import Segment, Transcript, Word
from whisper_transcriber.db.values import OUTPUT_FORMATS, JobOptions
from whisper_transcriber.worker import renamed_files
from whisper_transcriber.worker.outputs import render
from whisper_transcriber.worker.renamed_files import rewrite_renamed
from whisper_transcriber.worker.staging import TEMPORARY_PREFIX, stage_outputs


def labelled(n: int) -> Segment:
    speaker = f"Speaker {n % 3 + 1}"
    words = (
        Word(float(n), n + 0.5, " Line", 0.9, speaker),
        Word(n + 0.5, n + 1.0, f" {n}.", 0.9, speaker),
    )
    return Segment(n, float(n), n + 1.0, f" Line {n}.", words=words, speaker=speaker)


TRANSCRIPT = Transcript("en", 1.0, 6.0, tuple(labelled(n) for n in range(6)))


def published_job(store: JobStore, folder: Path) -> tuple[int, dict[str, Path]]:
    """A done job of three speakers whose five files were published as a worker publishes them."""
    source = Path(shutil.copy(FIXTURES / "speech_a.wav", folder))
    job, _ = store.enqueue(source, JobOptions(diarize=True, formats=OUTPUT_FORMATS), "api")
    claimed = store.claim("w")
    assert claimed is not None
    staged = stage_outputs(TRANSCRIPT, source, OUTPUT_FORMATS, None)
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
    caplog.set_level(logging.WARNING, renamed_files.__name__)

    SpeakerNames(store).rename(job_id, {"Speaker 2": "Grace"})
    assert rewrite_renamed(store) == [job_id]
    assert files["txt"].read_text() == "my own notes\n"
    assert outside.read_text() == render(TRANSCRIPT, "srt") and files["srt"].is_symlink()
    assert not files["json"].exists()
    assert files["vtt"].read_text() == as_api_renders(store, job_id, "vtt")  # the one intact
    kept = {Path(record.args[1]).suffix for record in caplog.records if record.args}
    assert kept == {".txt", ".srt", ".tsv", ".json"}, caplog.text
    assert not SpeakerNames(store).files_outdated(job_id)  # what could be done, was


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
    assert rewrite_renamed(store) == [job_id]
    assert files["txt"].read_text() == "edited meanwhile\n"
    assert files["vtt"].read_text() == as_api_renders(store, job_id, "vtt")
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
