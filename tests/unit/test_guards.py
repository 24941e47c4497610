"""Guards against hallucination (db/values.py GUARDS): faster-whisper's own defaults, so that a
job that sets none is transcribed as faster-whisper transcribes; what a job sets reaches
WhisperModel.transcribe; and the guards come from the settings, an inbox and a request."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from pydantic import ValidationError

from whisper_transcriber.api.schemas import OptionsIn
from whisper_transcriber.db.values import GUARD_DEFAULTS, GUARDS, VAD_PARAMETERS, JobOptions
from whisper_transcriber.service.inboxes import _inbox
from whisper_transcriber.service.settings import InboxSettings, SettingError, load_settings
from whisper_transcriber.worker.engine import transcribe_kwargs


def test_the_defaults_are_faster_whispers() -> None:
    from faster_whisper import WhisperModel
    from faster_whisper.vad import VadOptions

    theirs = inspect.signature(WhisperModel.transcribe).parameters
    kwargs = transcribe_kwargs(JobOptions())
    for name in GUARDS:
        if name in VAD_PARAMETERS:
            assert getattr(VadOptions(), VAD_PARAMETERS[name]) == GUARD_DEFAULTS[name], name
        else:
            assert kwargs[name] == theirs[name].default, name
    assert "vad_parameters" not in kwargs
    assert kwargs["word_timestamps"] is True  # for the default srt and vtt subtitles
    assert transcribe_kwargs(JobOptions(formats=("txt",)))["word_timestamps"] is False


def test_what_a_job_sets_reaches_faster_whisper() -> None:
    options = JobOptions(
        formats=("txt",),
        compression_ratio_threshold=2.0,
        log_prob_threshold=-0.8,
        no_speech_threshold=0.4,
        hallucination_silence_threshold=2.0,
        repetition_penalty=1.1,
        no_repeat_ngram_size=3,
        vad_filter=True,
        vad_min_silence_ms=500,
    )
    kwargs = transcribe_kwargs(options)
    assert kwargs["compression_ratio_threshold"] == 2.0
    assert kwargs["log_prob_threshold"] == -0.8
    assert kwargs["no_speech_threshold"] == 0.4
    assert kwargs["hallucination_silence_threshold"] == 2.0
    assert kwargs["word_timestamps"] is True  # faster-whisper needs them for that guard
    assert (kwargs["repetition_penalty"], kwargs["no_repeat_ngram_size"]) == (1.1, 3)
    assert kwargs["vad_parameters"] == {
        "threshold": 0.5,
        "min_speech_duration_ms": 0,
        "min_silence_duration_ms": 500,
        "speech_pad_ms": 400,
    }
    assert transcribe_kwargs(JobOptions())["hallucination_silence_threshold"] is None


def test_the_guards_come_from_settings_inboxes_and_requests(tmp_path: Path) -> None:
    service = load_settings(hallucination_silence_threshold=2, vad_filter=True)
    assert service.job_options().hallucination_silence_threshold == 2
    inbox = _inbox(
        InboxSettings.model_validate(f"{tmp_path}?no_repeat_ngram_size=4&vad_min_silence_ms=800"),
        service,
    ).options
    assert (inbox.no_repeat_ngram_size, inbox.vad_min_silence_ms) == (4, 800)
    assert inbox.hallucination_silence_threshold == 2
    asked = OptionsIn.from_form(
        {"no_speech_threshold": "0.3", "hallucination_silence_threshold": "0"}
    )
    options = asked.options(service.job_options())
    assert (options.no_speech_threshold, options.hallucination_silence_threshold) == (0.3, 0)
    assert transcribe_kwargs(options)["hallucination_silence_threshold"] is None  # 0 is off
    with pytest.raises(SettingError, match="no_speech_threshold"):
        load_settings(no_speech_threshold=2)
    with pytest.raises(ValidationError):
        OptionsIn(vad_threshold=1)
    with pytest.raises(ValidationError):  # CTranslate2 would take it as 0 and fail the job
        OptionsIn(repetition_penalty=1e-300)
    vad = _inbox(InboxSettings.model_validate(f"{tmp_path}?vad_filter=true"), load_settings())
    assert vad.options.vad_filter is True
