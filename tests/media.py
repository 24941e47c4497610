"""Longer recordings made from the speech fixtures, for jobs that must run a while."""

from __future__ import annotations

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
