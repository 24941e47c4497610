"""What a source must be before the model sees it: readable, holding audio, complete; silence is
an empty transcript. Real files, decoded by the real PyAV."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from faster_whisper.audio import decode_audio

from tests.helpers.media import FIXTURES, place, silence, wav_claiming
from whisper_transcriber.worker.media import MediaError, declared_duration, scan, scan_start


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
    audio = scan(str(FIXTURES / name))
    assert audio.duration == pytest.approx(4.25, abs=0.1)
    assert not audio.silent


@pytest.mark.parametrize("name", ["speech_a.wav", "speech_b.flac"])
def test_a_file_cut_short_is_refused(name: str, tmp_path: Path) -> None:
    cut = truncated(FIXTURES / name, tmp_path)
    with pytest.raises(MediaError, match=r"truncated file: .* declares 4\.\d s of audio but only"):
        scan(str(cut))


def test_mp3_length_is_trusted_only_when_a_header_states_it(tmp_path: Path) -> None:
    stated = mp3(tmp_path / "stated.mp3", length_header=True)
    assert declared_duration(str(stated)) == pytest.approx(4.2, abs=0.1)
    with pytest.raises(MediaError, match="truncated file"):
        scan(str(truncated(stated, tmp_path)))
    # Without a Xing/Info header libav guesses the length from the bitrate: no verdict on it.
    guessed = mp3(tmp_path / "guessed.mp3", length_header=False)
    assert declared_duration(str(guessed)) is None
    assert scan(str(truncated(guessed, tmp_path))).duration < 3


def test_empty_file_and_no_samples(tmp_path: Path) -> None:
    empty = tmp_path / "empty.flac"
    empty.touch()
    with pytest.raises(MediaError, match=r"^empty file \(0 bytes\): "):
        scan(str(empty))
    header_only = silence(tmp_path / "header-only.wav", 0)
    with pytest.raises(MediaError, match="the file has no samples"):
        scan(str(header_only))


def test_not_audio(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp3"
    text.write_text("not audio\n" * 100)
    with pytest.raises(MediaError, match=r"cannot decode .*: Invalid data found"):
        scan(str(text))


def test_silence_is_recognised(tmp_path: Path) -> None:
    assert scan(str(silence(tmp_path / "quiet.wav", 3))).silent
    assert not scan(str(place(FIXTURES / "speech_c.ogg", tmp_path))).silent


def test_a_file_longer_than_allowed_is_refused_from_its_header(tmp_path: Path) -> None:
    # It claims two hours and holds one second: the claim is refused before anything is decoded.
    claims_two_hours = wav_claiming(tmp_path / "film.wav", 7200, 1)
    with pytest.raises(
        MediaError,
        match=r"^too long: .*film\.wav is 7200 s long; the longest allowed is 3600 s "
        r"\(max_audio_duration_s\)$",
    ):
        scan(str(claims_two_hours), max_duration_s=3600)
    assert scan(str(FIXTURES / "speech_a.wav"), max_duration_s=5).duration < 5


def test_decoding_stops_past_the_limit_when_the_header_says_nothing(tmp_path: Path) -> None:
    guessed = mp3(tmp_path / "guessed.mp3", length_header=False)
    assert declared_duration(str(guessed)) is None
    with pytest.raises(
        MediaError, match=r"^too long: .*guessed\.mp3 is over 2 s long; the longest allowed is 2 s"
    ):
        scan(str(guessed), max_duration_s=2)


def test_samples_are_kept_only_for_a_short_file() -> None:
    path = str(FIXTURES / "speech_b.flac")
    short = scan(path, keep=16_000 * 5)
    assert short.whole is not None and short.whole.shape[0] == short.samples
    assert short.whole.dtype == np.float32
    assert np.array_equal(short.whole, decode_audio(path))  # what faster-whisper decodes
    assert scan(path, keep=16_000).whole is None
    assert scan(path).whole is None


def test_the_start_alone_is_decoded_for_language_detection(tmp_path: Path) -> None:
    start, duration = scan_start(str(FIXTURES / "speech_a.wav"), 16_000)
    assert start.shape == (16_000,)
    assert duration == pytest.approx(4.2, abs=0.1)  # from the header
    # A cut file is no matter for detection: its start is there.
    cut = truncated(FIXTURES / "speech_b.flac", tmp_path)
    assert scan_start(str(cut), 16_000)[0].shape == (16_000,)
    with pytest.raises(MediaError, match="too long"):
        scan_start(str(wav_claiming(tmp_path / "film.wav", 7200, 1)), 16_000, max_duration_s=60)
    with pytest.raises(MediaError, match="the file has no samples"):
        scan_start(str(silence(tmp_path / "header-only.wav", 0)), 16_000)
