"""Inbox rules: which files are taken, and when a file counts as completely written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.values import JobOptions
from whisper_transcriber.service.inboxes import confinement, file_filter, inboxes_from_settings
from whisper_transcriber.service.settings import SettingError, load_settings
from whisper_transcriber.watcher.filters import FileFilter, is_candidate
from whisper_transcriber.watcher.intake import Intake
from whisper_transcriber.watcher.spec import Inbox
from whisper_transcriber.watcher.stability import StabilityTracker

ROOT = Path("/inbox")


@pytest.mark.parametrize(
    ("name", "taken"),
    [
        ("talk.mp3", True),
        ("Movie (2020).MKV", True),
        ("sub/dir/voice.flac", True),
        ("notes.txt", False),
        ("talk.srt", False),
        ("talk.mp3.part", False),
        ("download.crdownload", False),
        (".hidden.wav", False),
        ("._talk.wav", False),
        ("~$draft.wav", False),
        ("@eaDir/talk.wav", False),
        ("#recycle/old.wav", False),
        ("Thumbs.db", False),
    ],
)
def test_candidates(name: str, taken: bool) -> None:
    assert is_candidate(ROOT / name, ROOT) is taken


def test_file_is_stable_only_after_quiet_period(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(b"x")
    tracker = StabilityTracker(settle_s=2.0)
    tracker.mark(path)
    assert tracker.stable(now=100.0) == []  # first look records size and mtime
    assert tracker.stable(now=101.0) == []
    with path.open("ab") as f:  # still being written: the clock starts again
        f.write(b"more")
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 1))
    assert tracker.stable(now=101.5) == []
    assert tracker.stable(now=103.0) == []
    assert tracker.stable(now=103.5) == [path]
    assert tracker.pending() == 0


def test_vanished_file_leaves_the_tracker(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(b"x")
    tracker = StabilityTracker(settle_s=0)
    tracker.mark(path)
    path.unlink()
    assert tracker.stable(now=1.0) == []
    assert tracker.pending() == 0


def _walked(intake: Intake, inbox: Inbox) -> list[str]:
    return sorted(p.relative_to(inbox.root).as_posix() for p in intake.walk(inbox))


def test_walk_finds_media_and_skips_clutter_and_our_own_folders(
    tmp_path: Path, store: JobStore
) -> None:
    settings = load_settings(inboxes=[f"{tmp_path}?on_success=move&on_failure=move&outbox=out"])
    [inbox] = inboxes_from_settings(settings)
    for name in (
        "a/one.wav", "two.mp3", "skip.txt", "a/three.mp3.part", "@eaDir/x.wav", ".cache/y.wav",
        "done/old.wav", "failed/bad.wav", "two.srt",
    ):  # fmt: skip
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    intake = Intake(store, [inbox], file_filter(settings), confinement(settings))
    assert _walked(intake, inbox) == ["a/one.wav", "two.mp3"]
    flat = Inbox(root=inbox.root, name="flat", options=JobOptions(), recursive=False)
    assert _walked(intake, flat) == ["two.mp3"]


def test_outbox_inside_the_inbox_is_not_input(tmp_path: Path, store: JobStore) -> None:
    settings = load_settings(inboxes=[f"{tmp_path}?outbox={tmp_path / 'transcripts'}"])
    [inbox] = inboxes_from_settings(settings)
    intake = Intake(store, [inbox], file_filter(settings), confinement(settings))
    assert intake.wants(tmp_path / "talk.wav")
    assert not intake.wants(tmp_path / "transcripts" / "talk.wav")
    assert not intake.wants(tmp_path.parent / "elsewhere.wav")


def test_plan_mirrors_the_tree_into_outbox_and_done(tmp_path: Path) -> None:
    settings = load_settings(
        inboxes=[f"{tmp_path / 'in'}?on_success=move&on_failure=move&language=de"],
        output_dir=tmp_path / "out",
    )
    [inbox] = inboxes_from_settings(settings)
    plan = inbox.plan(inbox.root / "2026" / "talk.wav")
    assert plan.options.output_dir == str(tmp_path / "out" / "2026")
    assert plan.options.language == "de"
    assert plan.move_on_done == inbox.root / "done" / "2026" / "talk.wav"
    assert plan.move_on_failure == inbox.root / "failed" / "2026" / "talk.wav"
    # Without an outbox, "beside the file" is beside where the original ends up.
    [moving] = inboxes_from_settings(load_settings(inboxes=[f"{tmp_path}?on_success=move"]))
    assert moving.plan(moving.root / "a.wav").options.output_dir == str(moving.root / "done")


def test_media_library_defaults_to_srt_sidecars(tmp_path: Path) -> None:
    settings = load_settings(inboxes=[f"{tmp_path}?media_library=true"], language="en")
    [library] = inboxes_from_settings(settings)
    options = library.plan(library.root / "Movie (2020).mkv").options
    assert (options.formats, options.media_library, options.language) == (("srt",), True, "en")
    assert options.output_dir is None


def test_extensions_and_patterns_from_settings() -> None:
    custom = FileFilter.of([".mka"], ["drafts"])
    assert custom.is_candidate(ROOT / "x.mka", ROOT)
    assert not custom.is_candidate(ROOT / "x.wav", ROOT)
    assert not custom.is_candidate(ROOT / "drafts" / "x.mka", ROOT)


def test_a_symlinked_file_is_never_moved_and_its_transcripts_stay_in_the_inbox(
    tmp_path: Path,
) -> None:
    library, inbox_folder = tmp_path / "library", tmp_path / "inbox"
    for folder in (library, inbox_folder / "sub"):
        folder.mkdir(parents=True)
    (library / "real.wav").write_bytes(b"x")
    (inbox_folder / "sub" / "link.wav").symlink_to(library / "real.wav")
    spec = f"{inbox_folder}?on_success=move&on_failure=move"
    [inbox] = inboxes_from_settings(load_settings(inboxes=[spec]))
    plan = inbox.plan(inbox_folder / "sub" / "link.wav")
    assert (plan.move_on_done, plan.move_on_failure) == (None, None)
    assert plan.options.output_dir == str(inbox_folder / "sub")


def test_an_outbox_that_is_the_inbox_itself_excludes_nothing(tmp_path: Path) -> None:
    [inbox] = inboxes_from_settings(load_settings(inboxes=[str(tmp_path)], output_dir=tmp_path))
    assert inbox.excluded == ()
    assert inbox.holds(tmp_path / "talk.wav")


def test_relative_done_and_failed_folders_are_inside_the_inbox(tmp_path: Path) -> None:
    spec = f"{tmp_path}?on_success=move&on_failure=move&done_dir=processed&failed_dir=/srv/bad"
    [inbox] = inboxes_from_settings(load_settings(inboxes=[spec]))
    assert inbox.done_dir == tmp_path / "processed"
    assert inbox.failed_dir == Path("/srv/bad")


def test_an_inbox_writing_into_another_inbox_is_refused(tmp_path: Path) -> None:
    talks, films = tmp_path / "talks", tmp_path / "films"
    settings = load_settings(inboxes=[f"{talks}?outbox={films / 'subs'}", str(films)])
    with pytest.raises(SettingError, match="lies inside inbox films"):
        inboxes_from_settings(settings)


def test_a_folder_with_a_question_mark_in_its_name(tmp_path: Path) -> None:
    odd = tmp_path / "What?"
    odd.mkdir()
    assert [i.path for i in load_settings(inboxes=[str(odd)]).inboxes] == [odd]
    [inbox] = load_settings(inboxes=[f"{odd}?recursive=false"]).inboxes
    assert (inbox.path, inbox.recursive) == (odd, False)
