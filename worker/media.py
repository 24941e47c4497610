"""A source file before the model sees it: readable, holding audio, complete, not too long.

Each check turns a bad input into a MediaError with a reason a person can act on, so that the job
fails on its own (without retries: the same bytes give the same answer) and the worker goes on.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from whisper_transcriber.worker.audio_stream import (
    SAMPLING_RATE,
    Piece,
    Samples,
    blocks,
    decoded,
    head,
    pieces,
)

# A file whose loudest sample stays below -60 dBFS holds no speech: the model is not asked, as
# Whisper invents words ("You") for silence.
SILENCE_PEAK = 10 ** (-60 / 20)
# Decoded audio this much shorter than the container declares means the file was cut short.
TRUNCATION_TOLERANCE_S = 1.0
TRUNCATION_TOLERANCE_FRACTION = 0.02
# MP3 headers that state the length; without one libav guesses it from the bitrate.
MP3_LENGTH_HEADERS = (b"Xing", b"Info", b"VBRI")
MP3_HEADER_SEARCH_BYTES = 4096


class MediaError(Exception):
    """The source cannot be transcribed (missing, a folder, undecodable, no audio): retrying won't help."""


@dataclass(frozen=True)
class ScannedAudio:
    """What one pass over a file's audio learnt, without holding it (unless it is short)."""

    samples: int  # 16 kHz mono samples decoded
    peak: float  # the loudest sample's magnitude, 1.0 at full scale
    whole: Samples | None = None  # the samples themselves, when the scan was asked to keep them

    @property
    def duration(self) -> float:
        return self.samples / SAMPLING_RATE

    @property
    def silent(self) -> bool:
        return self.peak < SILENCE_PEAK


def check_source(path: str) -> None:
    """Fail early, with a plain reason, for sources that are not files we can read."""
    source = Path(path)
    if not source.exists():
        raise MediaError(f"file not found: {path}")
    if source.is_dir():
        raise MediaError(f"not a file but a directory: {path}")
    if not os.access(source, os.R_OK):
        raise MediaError(f"permission denied: {path}")
    if source.stat().st_size == 0:
        raise MediaError(f"empty file (0 bytes): {path}")


def scan(path: str, *, keep: int = 0, max_duration_s: float | None = None) -> ScannedAudio:
    """Decode the first audio track once, counting samples and the peak; MediaError when there is
    no audio, it is cut short, or longer than max_duration_s. The samples are kept (`whole`) only
    when there are at most `keep` of them, so memory stays bounded whatever the file holds."""
    import av
    import av.error

    check_source(path)
    count, peak = 0, 0.0
    kept: list[Samples] | None = []
    try:
        # Opened once for the header and the samples: opening probes the format again each time.
        with av.open(path, metadata_errors="ignore") as container:
            declared = _checked_duration(container, path, max_duration_s)
            stream = decoded(container)
            try:
                for block in stream:
                    count += block.shape[0]
                    if max_duration_s is not None and count > max_duration_s * SAMPLING_RATE:
                        # the header did not say, or said less
                        raise MediaError(
                            _too_long(path, f"over {max_duration_s:g} s", max_duration_s)
                        )
                    if block.shape[0]:
                        # max and min, not abs: no copy of the block
                        peak = max(peak, float(block.max()), -float(block.min()))
                    if kept is not None and count <= keep:
                        kept.append(block)
                    else:
                        kept = None
            finally:
                stream.close()
    except av.error.FFmpegError as exc:
        raise MediaError(f"cannot decode {path}: {_ffmpeg_reason(exc)}") from exc
    audio = ScannedAudio(count, peak, np.concatenate(kept) if kept else None)
    if count == 0:
        raise MediaError(f"no audio in {path}: the file has no samples")
    if declared is not None and declared - audio.duration > max(
        TRUNCATION_TOLERANCE_S, declared * TRUNCATION_TOLERANCE_FRACTION
    ):
        raise MediaError(
            f"truncated file: {path} declares {declared:.1f} s of audio but only "
            f"{audio.duration:.1f} s can be decoded (an interrupted copy or download?)"
        )
    return audio


def scan_start(
    path: str, samples: int, *, max_duration_s: float | None = None
) -> tuple[Samples, float]:
    """The first `samples` samples, decoding no further, and the file's duration: as its header
    states it, else as far as was decoded. Checked as scan() checks, but for truncation."""
    import av
    import av.error

    check_source(path)
    try:
        with av.open(path, metadata_errors="ignore") as container:
            declared = _checked_duration(container, path, max_duration_s)
            start = head(path, samples, container)
    except av.error.FFmpegError as exc:
        raise MediaError(f"cannot decode {path}: {_ffmpeg_reason(exc)}") from exc
    if start.shape[0] == 0:
        raise MediaError(f"no audio in {path}: the file has no samples")
    return start, declared if declared is not None else start.shape[0] / SAMPLING_RATE


def pieces_of(
    path: str, audio: ScannedAudio, length: int, search: int
) -> Generator[Piece, None, None]:
    """The scanned file in pieces for the model (see audio_stream.pieces): the samples the scan
    kept, or the file decoded a second time."""
    import av.error

    if audio.whole is not None:
        yield Piece(0, audio.whole)
        return
    stream = pieces(blocks(path), length, search)
    try:
        yield from stream
    except av.error.FFmpegError as exc:  # it decoded a moment ago: the file changed since
        raise MediaError(f"cannot decode {path}: {_ffmpeg_reason(exc)}") from exc
    finally:
        stream.close()  # the decoder's file now, not when the generator is collected


def span_of(path: str, start: int, end: int) -> Samples:
    """Samples [start, end) of the file (a piece of a split job), decoding no further than end;
    MediaError when the file no longer reaches start (it changed since it was split)."""
    import av.error

    check_source(path)
    taken: list[Samples] = []
    position = 0
    stream = blocks(path)
    try:
        for block in stream:
            following = position + block.shape[0]
            if following > start:
                taken.append(block[max(start - position, 0) : end - position])
            position = following
            if position >= end:
                break
    except av.error.FFmpegError as exc:
        raise MediaError(f"cannot decode {path}: {_ffmpeg_reason(exc)}") from exc
    finally:
        stream.close()
    if position <= start:
        raise MediaError(
            f"{path} ends at {position / SAMPLING_RATE:.1f} s, before its piece at "
            f"{start / SAMPLING_RATE:.1f} s (the file changed after it was split)"
        )
    return np.concatenate(taken)


def from_start(path: str, audio: ScannedAudio | None = None) -> Generator[Samples, None, None]:
    """The file's audio from its start, a block at a time, for as long as it is read: the samples
    the scan kept, or the file decoded again."""
    import av.error

    if audio is not None and audio.whole is not None:
        yield audio.whole
        return
    stream = blocks(path)
    try:
        yield from stream
    except av.error.FFmpegError as exc:  # it decoded a moment ago: the file changed since
        raise MediaError(f"cannot decode {path}: {_ffmpeg_reason(exc)}") from exc
    finally:
        stream.close()


def _checked_duration(container: Any, path: str, max_duration_s: float | None) -> float | None:
    """The declared duration, refused when it is above max_duration_s."""
    declared = stated_duration(container, path)
    if max_duration_s is not None and declared is not None and declared > max_duration_s:
        raise MediaError(_too_long(path, f"{declared:.0f} s", max_duration_s))
    return declared


def _too_long(path: str, length: str, max_duration_s: float) -> str:
    return (
        f"too long: {path} is {length} long; the longest allowed is {max_duration_s:g} s "
        "(max_audio_duration_s)"
    )


def declared_duration(path: str) -> float | None:
    """The audio track's length as the file's headers state it; None when they do not.

    Also refuses what opens as a container but holds no audio (an image, a text file)."""
    import av
    import av.error

    try:
        with av.open(path, metadata_errors="ignore") as container:
            return stated_duration(container, path)
    except av.error.FFmpegError as exc:
        raise MediaError(f"cannot decode {path}: {_ffmpeg_reason(exc)}") from exc


def stated_duration(container: Any, path: str) -> float | None:
    """declared_duration of a file the caller has opened (`container`, from av.open)."""
    if not container.streams.audio:
        raise MediaError(f"no audio track in {path}")
    stream = container.streams.audio[0]
    if container.format.name == "wav":  # libav trims the stated length to the file
        return _wav_stated_duration(path)
    if not stream.duration or stream.time_base is None:
        return None
    if container.format.name == "mp3" and not _mp3_states_length(path):
        return None
    return float(stream.duration * stream.time_base)


def _mp3_states_length(path: str) -> bool:
    """Whether the first MPEG frame carries a Xing/Info/VBRI header (after any ID3v2 tag)."""
    with open(path, "rb") as file:
        head = file.read(10)
        offset = 0
        if head[:3] == b"ID3" and len(head) == 10:
            # The tag size is 4 "syncsafe" bytes of 7 bits each, after the 10-byte tag header.
            offset = 10 + sum((byte & 0x7F) << (7 * (3 - i)) for i, byte in enumerate(head[6:10]))
        file.seek(offset)
        frame = file.read(MP3_HEADER_SEARCH_BYTES)
    return any(marker in frame for marker in MP3_LENGTH_HEADERS)


def _wav_stated_duration(path: str) -> float | None:
    """The length a RIFF/WAVE header states for its data chunk; None when it states none (0 or
    0xFFFFFFFF, as recorders write while recording) or the header is not plain RIFF."""
    with open(path, "rb") as file:
        riff = file.read(12)
        if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
            return None
        byte_rate = None
        while header := file.read(8):
            if len(header) < 8:
                return None
            chunk_id, size = header[:4], int.from_bytes(header[4:], "little")
            if chunk_id == b"fmt ":
                fmt = file.read(size + size % 2)
                byte_rate = int.from_bytes(fmt[8:12], "little") if len(fmt) >= 12 else None
            elif chunk_id == b"data":
                if not byte_rate or size in (0, 0xFFFFFFFF):
                    return None
                return size / byte_rate
            else:
                file.seek(size + size % 2, os.SEEK_CUR)  # chunks are padded to even sizes
    return None


def _ffmpeg_reason(exc: BaseException) -> str:
    reason = getattr(exc, "strerror", None)
    if reason:
        return str(reason)
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
