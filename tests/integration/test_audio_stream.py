"""The streaming decoder gives faster-whisper's samples in bounded blocks, and the cutter splits
them at quiet moments without losing or repeating a sample. Real files through the real PyAV."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from faster_whisper.audio import decode_audio

from tests.helpers.media import FIXTURES, long_recording
from whisper_transcriber.worker.audio_stream import (
    GROUP_SOURCE_SAMPLES,
    SAMPLING_RATE,
    Samples,
    blocks,
    head,
    pieces,
    quietest_point,
)


def stereo_44k(path: Path) -> Path:
    subprocess.run(
        ["sox", "-R", str(FIXTURES / "speech_a.wav"), "-r", "44100", "-c", "2", str(path)],
        check=True,
    )
    return path


@pytest.mark.parametrize("name", ["speech_a.wav", "speech_b.flac", "speech_c.ogg", "44k.flac"])
def test_blocks_are_the_samples_faster_whisper_decodes(name: str, tmp_path: Path) -> None:
    path = FIXTURES / name if name != "44k.flac" else stereo_44k(tmp_path / name)
    streamed = np.concatenate(list(blocks(str(path))))
    assert streamed.dtype == np.float32
    assert np.array_equal(streamed, decode_audio(str(path)))  # bit for bit


def test_blocks_stay_small_whatever_the_length(tmp_path: Path) -> None:
    path = long_recording(tmp_path / "long.wav", repeats=30)  # about two minutes
    sizes = [block.shape[0] for block in blocks(str(path))]
    assert sum(sizes) > 100 * SAMPLING_RATE
    assert max(sizes) <= GROUP_SOURCE_SAMPLES + SAMPLING_RATE  # 16 kHz in: one group, about 31 s


def test_head_decodes_only_the_start() -> None:
    path = str(FIXTURES / "speech_b.flac")
    whole = decode_audio(path)
    assert np.array_equal(head(path, 20_000), whole[:20_000])
    assert np.array_equal(head(path, 10**9), whole)


def tone(seconds: float, amplitude: float = 0.5) -> Samples:
    t = np.arange(int(seconds * SAMPLING_RATE)) / SAMPLING_RATE
    samples: Samples = (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return samples


def quiet(seconds: float) -> Samples:
    return np.zeros(int(seconds * SAMPLING_RATE), np.float32)


def in_blocks(samples: Samples, size: int) -> list[Samples]:
    return [samples[i : i + size] for i in range(0, samples.shape[0], size)]


def test_pieces_are_cut_in_the_quiet_and_lose_nothing() -> None:
    # 8 s of sound, then 0.5 s of quiet, then 8 s of sound, ... : pieces of at most 12 s, the
    # cut looked for in their last 5 s, must end in a quiet stretch.
    pattern = np.concatenate([tone(8), quiet(0.5)])
    signal = np.concatenate([pattern] * 6)
    cut = list(pieces(in_blocks(signal, 3_000), 12 * SAMPLING_RATE, 5 * SAMPLING_RATE))
    assert len(cut) > 3
    assert np.array_equal(np.concatenate([piece.samples for piece in cut]), signal)
    assert [piece.start for piece in cut[1:]] == [piece.end for piece in cut[:-1]]
    for piece in cut[:-1]:
        assert piece.samples.shape[0] <= 12 * SAMPLING_RATE
        assert not signal[piece.end - 80 : piece.end + 80].any(), piece.end / SAMPLING_RATE


def test_a_stream_of_one_piece_is_left_whole() -> None:
    signal = tone(10)
    cut = list(pieces(in_blocks(signal, 7_000), 10 * SAMPLING_RATE, 2 * SAMPLING_RATE))
    assert len(cut) == 1 and cut[0].start == 0
    assert np.array_equal(cut[0].samples, signal)
    assert list(pieces([], 10, 2)) == []


def test_quietest_point_prefers_the_latest_quiet_and_the_end_when_too_short() -> None:
    signal = np.concatenate([tone(1), quiet(0.5), tone(1), quiet(0.5), tone(0.5)])
    point = quietest_point(signal)
    assert 2.5 * SAMPLING_RATE < point < 3.0 * SAMPLING_RATE  # in the second quiet stretch
    assert quietest_point(tone(0.1)) == int(0.1 * SAMPLING_RATE)
