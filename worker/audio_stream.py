"""A file's audio as bounded blocks of 16 kHz mono samples, and those blocks cut into pieces.

Nothing here holds a whole file: two hours of float32 samples are 460 MB, and faster-whisper's
features of them over a gigabyte, while a piece of a few minutes costs tens of MB whatever the
file's length (docs/benchmarks.md, "Memory per job").
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

SAMPLING_RATE = 16_000
Samples = np.ndarray[Any, np.dtype[np.float32]]

# Source samples gathered before resampling, as faster_whisper.audio.decode_audio gathers them:
# the same steps give the same samples, so a short file reaches the model exactly as before.
GROUP_SOURCE_SAMPLES = 500_000
# The quietest moment is looked for in frames of 10 ms, averaged over 200 ms: a pause between
# words or phrases, not the short closure of a consonant inside a word.
ENERGY_FRAME = SAMPLING_RATE // 100
QUIET_FRAMES = 20


@dataclass(frozen=True)
class Piece:
    """Consecutive samples of a file, and where they start in it."""

    start: int  # index of the first sample in the whole file
    samples: Samples

    @property
    def start_s(self) -> float:
        return self.start / SAMPLING_RATE

    @property
    def end(self) -> int:
        return self.start + int(self.samples.shape[0])


def blocks(path: str) -> Generator[Samples, None, None]:
    """The first audio track, decoded a block at a time (at most a few seconds each).

    Raises av.error.FFmpegError for what cannot be opened or decoded; frames that fail to decode
    are skipped, as faster-whisper skips them. Unlike decode_audio it does not run the garbage
    collector after each file, which costs long pauses in a big process."""
    import av

    with av.open(path, mode="r", metadata_errors="ignore") as container:
        yield from decoded(container)


def decoded(container: Any) -> Generator[Samples, None, None]:
    """As blocks(), from a container the caller has opened (and closes)."""
    import av

    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLING_RATE)
    groups = _grouped(_valid_frames(container.decode(audio=0)))
    for group in itertools.chain(groups, [None]):  # None flushes the resampler
        for frame in resampler.resample(group):
            yield _floats(frame)


def head(path: str, samples: int, container: Any = None) -> Samples:
    """The first `samples` samples of the file (fewer if it is shorter), decoding no further;
    from `container` when the caller has the file open already."""
    taken: list[Samples] = []
    count = 0
    stream = blocks(path) if container is None else decoded(container)
    try:
        for block in stream:
            taken.append(block[: samples - count])
            count += taken[-1].shape[0]
            if count >= samples:
                break
    finally:
        stream.close()  # closes the container now, not when the generator is collected
    return np.concatenate(taken) if taken else np.zeros(0, np.float32)


def pieces(
    stream: Iterable[Samples],
    length: int,
    search: int,
    cut_in: Callable[[Samples], int] | None = None,
) -> Generator[Piece, None, None]:
    """The stream cut into pieces of at most `length` samples. Each cut falls on the quietest
    moment of the piece's last `search` samples (or where `cut_in` chooses among them), so that
    no word is split between two pieces; a stream of at most `length` samples is one piece,
    unchanged."""
    cut_in = cut_in or quietest_point
    pending: list[Samples] = []
    held = 0
    start = 0
    for block in stream:
        pending.append(block)
        held += block.shape[0]
        while held > length:
            buffer = np.concatenate(pending)
            cut = length - search + cut_in(buffer[length - search : length])
            yield Piece(start, buffer[:cut])
            start += cut
            rest = buffer[cut:].copy()  # a view would keep the whole buffer alive
            pending, held = [rest], rest.shape[0]
    if held:
        yield Piece(start, np.concatenate(pending))


def quietest_point(samples: Samples) -> int:
    """Index of the middle of the quietest 200 ms of samples (the latest, among equals);
    the end when there are too few samples to choose from."""
    frames = samples.shape[0] // ENERGY_FRAME
    if frames < QUIET_FRAMES:
        return int(samples.shape[0])
    framed = samples[: frames * ENERGY_FRAME].reshape(frames, ENERGY_FRAME)
    energy = np.einsum("ij,ij->i", framed, framed, dtype=np.float64)
    windows = np.convolve(energy, np.ones(QUIET_FRAMES), mode="valid")
    latest_quietest = int(windows.shape[0]) - 1 - int(np.argmin(windows[::-1]))
    return (latest_quietest + QUIET_FRAMES // 2) * ENERGY_FRAME


def _valid_frames(frames: Iterator[Any]) -> Iterator[Any]:
    import av.error

    while True:
        try:
            yield next(frames)
        except StopIteration:
            return
        except av.error.InvalidDataError:
            continue


def _grouped(frames: Iterator[Any]) -> Iterator[Any]:
    import av

    fifo = av.AudioFifo()
    for frame in frames:
        frame.pts = None  # no timestamp checks: damaged files have gaps
        fifo.write(frame)
        if fifo.samples >= GROUP_SOURCE_SAMPLES:
            yield fifo.read()
    if fifo.samples > 0:
        yield fifo.read()


def _floats(frame: Any) -> Samples:
    # s16 to float32 as decode_audio converts it, bit for bit
    samples: Samples = frame.to_ndarray().reshape(-1).astype(np.float32) / 32768.0
    return samples
