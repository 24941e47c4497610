"""The speech fixtures, and media made from them: longer recordings, silence, a film, a WAV whose
header lies about its length."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


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


def wav_claiming(path: Path, claimed_s: int, holding_s: int) -> Path:
    """A 16 kHz mono WAV whose header states claimed_s seconds of samples but that holds holding_s."""
    data = bytes(2 * 16_000 * holding_s)
    fmt = (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + (16_000).to_bytes(4, "little")
    fmt += (32_000).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    claimed = 2 * 16_000 * claimed_s
    header = b"RIFF" + (36 + claimed).to_bytes(4, "little") + b"WAVE"
    header += b"fmt " + len(fmt).to_bytes(4, "little") + fmt
    header += b"data" + claimed.to_bytes(4, "little")
    path.write_bytes(header + data)
    return path


def make_video(path: Path) -> Path:
    """A Matroska file with the speech fixture as its AAC audio track, as a film would have."""
    import av  # PyAV loads codecs: only the tests that make a film pay for it

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(FIXTURES / "speech_a.wav")) as source, av.open(str(path), "w") as out:
        audio = source.streams.audio[0]
        encoded = out.add_stream("aac", rate=audio.rate, layout="mono")
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=audio.rate)
        for frame in source.decode(audio):
            for resampled in resampler.resample(frame):
                out.mux(encoded.encode(resampled))
        out.mux(encoded.encode(None))
    return path
