"""Models on this machine: fetching a size name once into the cache, and what `models` lists.

A faster-whisper size name ("small", "large-v3") is looked up in the model cache folder first, so
that a machine that downloaded it once starts offline; only when it is not there is it downloaded
(once, by the main process, before any worker starts). Workers then load a local folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from whisper_transcriber.worker.bundled_base import (
    BundledModelMissing,
    folder_in,
    installed,
    is_joined,
    joined_folder,
)
from whisper_transcriber.worker.defaults import BUNDLED_MODEL, BUNDLED_MULTILINGUAL
from whisper_transcriber.worker.engine import ModelNotFound, ModelSpec, resolve_model


@dataclass(frozen=True)
class ModelEntry:
    name: str
    where: str  # a folder, or "" when not on this machine
    note: str


def fetch(spec: ModelSpec) -> ModelSpec:
    """A local folder for the model: as it is, from the cache, or downloaded into the cache."""
    if spec.is_local:
        return spec
    if spec.name_or_path == BUNDLED_MULTILINGUAL:
        try:
            return ModelSpec(str(joined_folder(Path(spec.download_root or "."))))
        except (BundledModelMissing, OSError) as exc:
            raise ModelNotFound(str(exc)) from exc
    from faster_whisper.utils import download_model

    try:
        return ModelSpec(
            download_model(spec.name_or_path, local_files_only=True, cache_dir=spec.download_root)
        )
    except Exception:  # noqa: S110 - not cached yet: download it below
        pass
    try:
        folder = download_model(spec.name_or_path, cache_dir=spec.download_root)
    except Exception as exc:  # huggingface_hub's errors: offline, unknown repo, disk full
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelNotFound(
            f"{spec.name_or_path!r} is not in the model cache {spec.download_root} and cannot "
            f"be downloaded ({reason}); download it once while online, or name a local "
            "CTranslate2 folder"
        ) from exc
    return ModelSpec(folder)


def list_models(cache_dir: Path) -> list[ModelEntry]:
    """The bundled model, then every faster-whisper size: cached here or to be downloaded."""
    from faster_whisper.utils import available_models, download_model

    entries = [
        ModelEntry(BUNDLED_MODEL, resolve_model(BUNDLED_MODEL).name_or_path, "tiny.en, offline"),
        _bundled_base(cache_dir),
    ]
    for size in available_models():
        try:
            folder = download_model(size, local_files_only=True, cache_dir=str(cache_dir))
        except Exception:  # not cached
            entries.append(ModelEntry(size, "", "downloaded on first use (needs the network)"))
        else:
            entries.append(ModelEntry(size, folder, "cached"))
    return entries


def _bundled_base(cache_dir: Path) -> ModelEntry:
    """Listed without joining it (a listing writes nothing)."""
    folder = folder_in(cache_dir)
    if is_joined(folder):
        return ModelEntry(BUNDLED_MULTILINGUAL, str(folder), "base, multilingual, offline")
    if installed():
        return ModelEntry(BUNDLED_MULTILINGUAL, "", "base, multilingual, joined on first use")
    return ModelEntry(BUNDLED_MULTILINGUAL, "", "needs the multilingual extra")
