"""Transcripts land only in the planned folder, and never over a file that is not the source's own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from whisper_transcriber.db.transcript import Segment, Transcript
from whisper_transcriber.db.values import OUTPUT_FORMATS
from whisper_transcriber.worker.staging import OutputFolderChanged, stage_outputs

TRANSCRIPT = Transcript("en", 0.99, 2.0, (Segment(id=0, start=0.0, end=2.0, text=" Hello."),))


def everything_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def test_a_file_someone_else_put_there_is_kept_and_the_transcript_takes_the_next_name(
    tmp_path: Path,
) -> None:
    source = tmp_path / "talk.wav"
    notes = tmp_path / "talk.txt"
    notes.write_text("my own notes")
    notes.chmod(0o640)
    [written] = stage_outputs(TRANSCRIPT, source, ["txt"], None).publish()
    assert written == tmp_path / "talk (2).txt"
    assert written.read_text() == "Hello.\n"
    assert notes.read_text() == "my own notes"
    assert notes.stat().st_mode & 0o777 == 0o640

    # The next run of the same source replaces its own file, and only that one.
    written.chmod(0o600)
    again = Transcript("en", 0.99, 2.0, (Segment(id=0, start=0.0, end=2.0, text=" Again."),))
    [rewritten] = stage_outputs(again, source, ["txt"], None, ours=[str(written)]).publish()
    assert rewritten == written
    assert written.read_text() == "Again.\n"
    assert written.stat().st_mode & 0o777 == 0o600  # the mode someone gave it stays
    assert notes.read_text() == "my own notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["talk (2).txt", "talk.txt"]


def test_a_link_at_an_output_name_is_neither_followed_nor_replaced(tmp_path: Path) -> None:
    victim = tmp_path / "elsewhere" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("precious")
    media = tmp_path / "media"
    media.mkdir()
    (media / "talk.txt").symlink_to(victim)
    # Even listed as ours: a link there now is someone else's doing.
    ours = [str(media / "talk.txt")]
    [written] = stage_outputs(TRANSCRIPT, media / "talk.wav", ["txt"], None, ours=ours).publish()
    assert written == media / "talk (2).txt"
    assert victim.read_text() == "precious"
    assert (media / "talk.txt").is_symlink()


@pytest.mark.parametrize("swapped", ["out", "out/a", "out/a/b"])
def test_a_folder_swapped_for_a_link_before_publishing_writes_nothing_anywhere(
    tmp_path: Path, swapped: str
) -> None:
    planned = tmp_path / "out" / "a" / "b"
    outside = tmp_path / "outside"
    outside.mkdir()
    staged = stage_outputs(TRANSCRIPT, tmp_path / "talk.wav", OUTPUT_FORMATS, planned)
    # The attacker moves the real folder away and puts a link to their own in its place,
    # with the same tree below, so that the path still "works".
    (tmp_path / swapped).rename(tmp_path / "moved-away")
    tail = Path(*planned.relative_to(tmp_path / swapped).parts)
    (outside / tail).mkdir(parents=True, exist_ok=True)
    (tmp_path / swapped).symlink_to(outside)

    with pytest.raises(OutputFolderChanged, match="is now a symbolic link"):
        staged.publish()
    assert [p for p in everything_under(outside) if "." in p] == []
    assert [p for p in everything_under(tmp_path / "moved-away") if "." in p] == []
    assert staged.temporaries == {}


def test_a_folder_replaced_by_another_real_folder_before_publishing_is_refused(
    tmp_path: Path,
) -> None:
    planned = tmp_path / "out"
    staged = stage_outputs(TRANSCRIPT, tmp_path / "talk.wav", ["txt"], planned)
    planned.rename(tmp_path / "old-out")
    planned.mkdir()
    with pytest.raises(OutputFolderChanged, match="was replaced by another folder"):
        staged.publish()
    assert everything_under(planned) == []
    assert everything_under(tmp_path / "old-out") == []


def test_a_link_on_the_planned_path_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "out").symlink_to(outside)
    with pytest.raises(OutputFolderChanged, match=f"{tmp_path / 'out'} is now a symbolic link"):
        stage_outputs(
            TRANSCRIPT, tmp_path / "talk.wav", OUTPUT_FORMATS, tmp_path / "out" / "deeper"
        )
    assert everything_under(outside) == []


def test_new_transcripts_get_the_usual_mode(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    reference.write_text("x")
    [path] = stage_outputs(TRANSCRIPT, tmp_path / "talk.mp3", ["txt"], None).publish()
    assert path.stat().st_mode == reference.stat().st_mode
    assert os.stat(path).st_nlink == 1  # the temporary's name is gone
