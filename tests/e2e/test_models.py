"""Models by size name: taken from the cache folder when it holds them (offline), else downloaded
once; a clear error naming the setting when neither works. `models` lists what is here."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.helpers.cli import clean_env, run_cli
from tests.helpers.media import FIXTURES, place
from whisper_transcriber.db.values import JobOptions
from whisper_transcriber.worker.engine import Engine, resolve_model
from whisper_transcriber.worker.models import fetch

SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"


def cache_holding_tiny_en(cache: Path) -> Path:
    """A Hugging Face cache folder as a download of tiny.en leaves it, filled from the bundled
    copy of that very model (the tests never reach the network)."""
    repo = cache / "models--Systran--faster-whisper-tiny.en"
    snapshot = repo / "snapshots" / SNAPSHOT
    shutil.copytree(resolve_model("bundled").name_or_path, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SNAPSHOT)
    return snapshot


def offline(**extra: str) -> dict[str, str]:
    return clean_env(HF_HUB_OFFLINE="1", **extra)


def test_cached_size_name_is_used_offline(tmp_path: Path) -> None:
    snapshot = cache_holding_tiny_en(tmp_path / "models")
    spec = fetch(resolve_model("tiny.en", tmp_path / "models"))
    assert Path(spec.name_or_path) == snapshot
    transcript = Engine(spec, "cpu", "int8", 1).transcribe(
        str(FIXTURES / "speech_a.wav"), JobOptions()
    )
    assert "museum" in transcript.text.lower()


def test_transcribe_with_a_cached_size_name(tmp_path: Path) -> None:
    cache_holding_tiny_en(tmp_path / "models")
    source = place(FIXTURES / "speech_b.flac", tmp_path / "media")
    result = run_cli(
        "transcribe", source, "--model", "tiny.en", cwd=tmp_path,
        env=offline(WHISPER_TRANSCRIBER_MODEL_CACHE_DIR=str(tmp_path / "models")),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "report" in source.with_suffix(".txt").read_text().lower()


def test_size_name_neither_cached_nor_downloadable_is_one_error(tmp_path: Path) -> None:
    result = run_cli("transcribe", "x.wav", "--model", "small", cwd=tmp_path, env=offline())
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(
        "error: setting model (--model or WHISPER_TRANSCRIBER_MODEL): 'small' is not in the "
        f"model cache {tmp_path / 'data' / 'models'} and cannot be downloaded ("
    ), line


def test_models_lists_the_bundled_and_cached_ones(tmp_path: Path) -> None:
    snapshot = cache_holding_tiny_en(tmp_path / "data" / "models")
    result = run_cli("models", "--model", "tiny.en", cwd=tmp_path, env=offline())
    assert result.returncode == 0, result.stderr
    rows = {line[2:].split()[0]: line for line in result.stdout.splitlines()[2:]}
    assert rows["bundled"].startswith("  bundled") and "tiny.en, offline" in rows["bundled"]
    assert rows["tiny.en"].startswith("* tiny.en") and str(snapshot) in rows["tiny.en"]
    assert "downloaded on first use" in rows["large-v3"]
