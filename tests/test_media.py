"""What a source must be before the model sees it: readable, holding audio, complete; silence is
an empty transcript. Real files, decoded by the real PyAV."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from tests.conftest import FIXTURES
from tests.media import place, silence
from worker.media import MediaError, declared_duration, decode


def truncated(source: Path, folder: Path, keep: float = 0.5) -> Path:
    data = source.read_bytes()
    cut = folder / f"cut-{source.name}"
    cut.write_bytes(data[: int(len(data) * keep)])
    return cut


def mp3(path: Path, *, length_header: bool) -> Path:
    """speech_a as an MP3 (with an ID3v2 tag in front), with or without a Xing/Info header."""
    options = {} if length_header else {"write_xing": "0"}
    with (
        av.open(str(FIXTURES / "speech_a.wav")) as source,
        av.open(str(path), "w", options=options) as out,
    ):
        stream = out.add_stream("libmp3lame", rate=16_000)
        for frame in source.decode(audio=0):
            frame.pts = None
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.mark.parametrize("name", ["speech_a.wav", "speech_b.flac", "speech_c.ogg"])
def test_whole_files_decode_to_their_stated_length(name: str) -> None:
    audio = decode(str(FIXTURES / name))
    assert audio.duration == pytest.approx(4.25, abs=0.1)
    assert not audio.silent


@pytest.mark.parametrize("name", ["speech_a.wav", "speech_b.flac"])
def test_a_file_cut_short_is_refused(name: str, tmp_path: Path) -> None:
    cut = truncated(FIXTURES / name, tmp_path)
    with pytest.raises(MediaError, match=r"truncated file: .* declares 4\.\d s of audio but only"):
        decode(str(cut))


def test_mp3_length_is_trusted_only_when_a_header_states_it(tmp_path: Path) -> None:
    stated = mp3(tmp_path / "stated.mp3", length_header=True)
    assert declared_duration(str(stated)) == pytest.approx(4.2, abs=0.1)
    with pytest.raises(MediaError, match="truncated file"):
        decode(str(truncated(stated, tmp_path)))
    # Without a Xing/Info header libav guesses the length from the bitrate: no verdict on it.
    guessed = mp3(tmp_path / "guessed.mp3", length_header=False)
    assert declared_duration(str(guessed)) is None
    assert decode(str(truncated(guessed, tmp_path))).duration < 3


def test_empty_file_and_no_samples(tmp_path: Path) -> None:
    empty = tmp_path / "empty.flac"
    empty.touch()
    with pytest.raises(MediaError, match=r"^empty file \(0 bytes\): "):
        decode(str(empty))
    header_only = silence(tmp_path / "header-only.wav", 0)
    with pytest.raises(MediaError, match="the file has no samples"):
        decode(str(header_only))


def test_not_audio(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp3"
    text.write_text("not audio\n" * 100)
    with pytest.raises(MediaError, match=r"cannot decode .*: Invalid data found"):
        decode(str(text))


def test_silence_is_recognised(tmp_path: Path) -> None:
    assert decode(str(silence(tmp_path / "quiet.wav", 3))).silent
    assert not decode(str(place(FIXTURES / "speech_c.ogg", tmp_path))).silent
