"""`whisper-transcriber transcribe` end to end: real speech, real model, real worker processes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.helpers.cli import clean_env, run_cli
from tests.helpers.fake_engine import fake_engine_env
from tests.helpers.media import FIXTURES

FORMATS = ("txt", "srt", "vtt", "json", "tsv")


def copy_fixtures(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy(source, folder)) for source in sorted(FIXTURES.glob("speech_*"))]


def test_transcribe_writes_five_formats_with_the_right_words(
    database_url: str, tmp_path: Path, expected_speech: dict[str, dict[str, object]]
) -> None:
    sources = copy_fixtures(tmp_path / "media")
    result = run_cli("transcribe", *sources, "--database-url", database_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    for source in sources:
        keywords = expected_speech[source.name]["keywords"]
        assert isinstance(keywords, list)
        for fmt in FORMATS:
            output = source.with_suffix(f".{fmt}")
            assert f"-> {output}" in result.stdout
            text = output.read_text(encoding="utf-8").lower()
            for keyword in keywords:
                assert keyword in text, (output, keyword, text)
        srt = source.with_suffix(".srt").read_text()
        assert srt.startswith("1\n00:00:00,000 --> 00:00:0")
        assert source.with_suffix(".vtt").read_text().startswith("WEBVTT\n\n00:00:")
        assert source.with_suffix(".tsv").read_text().startswith("start\tend\ttext\n")
        data = json.loads(source.with_suffix(".json").read_text())
        assert data["language"] == "en" and data["duration"] > 3 and data["segments"]
    assert not list((tmp_path / "media").glob("*.tmp")) and not list(
        (tmp_path / "media").glob(".*")
    )


def test_done_file_is_not_transcribed_twice(tmp_path: Path) -> None:
    [source, *_] = copy_fixtures(tmp_path / "media")
    env = fake_engine_env(clean_env())  # the queue's memory is under test, not the model
    first = run_cli("transcribe", source, "--formats", "txt", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    transcript = source.with_suffix(".txt")
    written = transcript.stat().st_mtime_ns

    again = run_cli("transcribe", source, "--formats", "txt", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    assert transcript.stat().st_mtime_ns == written
    listing = run_cli("jobs", cwd=tmp_path, env=env)
    assert listing.returncode == 0, listing.stderr
    rows = [line for line in listing.stdout.splitlines()[1:] if line.strip()]
    assert len(rows) == 1 and " done " in rows[0] and str(source) in rows[0]

    # Other options are new work; --force is new work whatever the options.
    srt = run_cli("transcribe", source, "--formats", "srt", cwd=tmp_path, env=env)
    assert srt.returncode == 0, srt.stderr
    forced = run_cli("transcribe", source, "--formats", "txt", "--force", cwd=tmp_path, env=env)
    assert forced.returncode == 0, forced.stderr
    assert transcript.stat().st_mtime_ns != written  # its own transcript, replaced in place
    assert source.with_suffix(".srt").exists() and not source.with_name("a (2).txt").exists()
    listing = run_cli("jobs", cwd=tmp_path, env=env)
    rows = [line for line in listing.stdout.splitlines()[1:] if line.strip()]
    assert len(rows) == 3 and all(" done " in row for row in rows)


def test_output_dir_and_format_choice(tmp_path: Path) -> None:
    [source, *_] = copy_fixtures(tmp_path / "media")
    out = tmp_path / "out"
    result = run_cli(
        "transcribe", source, "--output-dir", out, "--formats", "srt,json", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"{source.stem}.json", f"{source.stem}.srt"]
    assert not source.with_suffix(".srt").exists()


def test_bad_inputs_fail_their_own_jobs_only(database_url: str, tmp_path: Path) -> None:
    media = tmp_path / "media"
    [good, *_] = copy_fixtures(media)
    garbage = media / "noise.wav"
    garbage.write_bytes(b"RIFF" + bytes(range(256)) * 40)
    text_as_mp3 = media / "notes.mp3"
    text_as_mp3.write_text("this is not audio\n" * 50)
    missing = media / "missing.flac"
    folder = media / "a-folder.wav"
    folder.mkdir()

    result = run_cli(
        "transcribe", garbage, missing, good, folder, text_as_mp3,
        "--database-url", database_url, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert f"done    {good}" in lines
    assert (
        f"failed  {garbage}: cannot decode {garbage}: Invalid data found when processing input"
        in lines
    )
    assert (
        f"failed  {text_as_mp3}: cannot decode {text_as_mp3}: Invalid data found when processing input"
        in lines
    )
    assert f"failed  {missing}: file not found: {missing}" in lines
    assert f"failed  {folder}: not a file but a directory: {folder}" in lines
    assert "Traceback" not in result.stderr
    assert good.with_suffix(".txt").exists() and not garbage.with_suffix(".txt").exists()


def test_db_upgrade_command(database_url: str, tmp_path: Path) -> None:
    result = run_cli("db", "upgrade", "--database-url", database_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_word_timestamps_appear_in_json_when_asked(tmp_path: Path) -> None:
    [source, *_] = copy_fixtures(tmp_path / "media")
    result = run_cli(
        "transcribe", source, "--formats", "json", "--word-timestamps", "--language", "en",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(source.with_suffix(".json").read_text())
    words = [word for segment in data["segments"] for word in segment["words"]]
    assert "museum" in "".join(word["word"] for word in words).lower()
    assert all(word["start"] <= word["end"] for word in words)
