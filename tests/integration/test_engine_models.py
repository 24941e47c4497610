"""Model resolution: the bundled default, a size name, a local CTranslate2 folder, or a clear error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers.media import FIXTURES
from whisper_transcriber.db.values import JobOptions
from whisper_transcriber.worker.engine import (
    Engine,
    ModelNotFound,
    resolve_compute_type,
    resolve_device,
    resolve_model,
)
from whisper_transcriber.worker.media import MediaError


def test_bundled_model_is_a_local_folder() -> None:
    spec = resolve_model("bundled")
    assert spec.is_local
    assert (Path(spec.name_or_path) / "model.bin").is_file()


def test_size_name_downloads_into_the_cache_folder(tmp_path: Path) -> None:
    spec = resolve_model("small", tmp_path / "models")
    assert spec.name_or_path == "small" and spec.download_root == str(tmp_path / "models")
    assert not spec.is_local


def test_local_folder_is_used_as_is(tmp_path: Path) -> None:
    copy = tmp_path / "my-model"
    shutil.copytree(resolve_model("bundled").name_or_path, copy)
    spec = resolve_model(str(copy))
    assert spec.name_or_path == str(copy.resolve())
    engine = Engine(spec, "cpu", "int8", cpu_threads=1)
    transcript = engine.transcribe(str(FIXTURES / "speech_a.wav"), JobOptions())
    assert "museum" in transcript.text.lower()


@pytest.mark.parametrize(
    ("model", "message"),
    [("./nowhere", "no model folder at"), ("huge-v9", "neither a model folder nor")],
)
def test_unknown_model(model: str, message: str) -> None:
    with pytest.raises(ModelNotFound, match=message):
        resolve_model(model)


def test_cpu_defaults() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_compute_type("auto", "cpu") == "int8"
    assert resolve_compute_type("auto", "cuda") == "float16"
    assert resolve_compute_type("float32", "cpu") == "float32"


def test_wav_header_without_samples_is_a_failure(tmp_path: Path) -> None:
    import wave

    empty = tmp_path / "empty.wav"
    with wave.open(str(empty), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
    engine = Engine(resolve_model("bundled"), "cpu", "int8", cpu_threads=1)
    with pytest.raises(MediaError, match="no audio"):
        engine.transcribe(str(empty), JobOptions())
