"""Inbox rules: which files are taken, and when a file counts as completely written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from watcher.filters import is_candidate
from watcher.inbox import scan
from watcher.stability import StabilityTracker

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


def test_scan_finds_media_recursively(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    for name in ("a/one.wav", "two.mp3", "skip.txt", "a/three.mp3.part"):
        (tmp_path / name).write_bytes(b"x")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in scan(tmp_path)) == [
        "a/one.wav",
        "two.mp3",
    ]
