"""Longer recordings made from the speech fixtures, for jobs that must run a while."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

from tests.conftest import FIXTURES


def long_recording(path: Path, repeats: int) -> Path:
    """speech_a.wav (about 4 s) said `repeats` times over, as one WAV file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(FIXTURES / "speech_a.wav"), "rb") as source:
        params, frames = source.getparams(), source.readframes(source.getnframes())
    with wave.open(str(path), "wb") as out:
        out.setparams(params)
        for _ in range(repeats):
            out.writeframes(frames)
    return path


def place(source: Path, folder: Path, name: str | None = None) -> Path:
    """A copy of source in folder (made if needed), under its own name or `name`."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(source, folder / (name or source.name)))


def silence(path: Path, seconds: int) -> Path:
    """A 16 kHz mono WAV of digital silence, written a second at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        second = bytes(2 * 16_000)
        for _ in range(seconds):
            out.writeframes(second)
    return path
