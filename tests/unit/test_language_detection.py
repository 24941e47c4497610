"""Language detection's rules without the model (worker/language_detection.py), and its options
through the settings, an inbox and a request; tests/integration/test_language_detection.py runs
it through the real multilingual model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from whisper_transcriber.api.schemas import OptionsIn
from whisper_transcriber.db.values import (
    LANGUAGE_DETECTION_SEGMENTS,
    LANGUAGE_DETECTION_THRESHOLD,
    JobOptions,
    stored_options,
)
from whisper_transcriber.service.inboxes import _inbox
from whisper_transcriber.service.settings import InboxSettings, SettingError, load_settings
from whisper_transcriber.worker.audio_stream import SAMPLING_RATE
from whisper_transcriber.worker.language_detection import (
    WINDOW,
    Detection,
    DetectionRules,
    _among,
    _chunks,
    detect,
    known_without_model,
)


class ScriptedModel:
    """Answers detect_language with the next window's probabilities, and records the windows."""

    def __init__(self, *answers: dict[str, float]) -> None:
        self.answers = list(answers)
        self.heard: list[int] = []

    def detect_language(self, audio: Any) -> tuple[str, float, list[tuple[str, float]]]:
        self.heard.append(int(audio.shape[0]))
        every = sorted(self.answers.pop(0).items(), key=lambda pair: -pair[1])
        return every[0][0], every[0][1], every


def tone(seconds: float) -> np.ndarray:
    """A loud 200 Hz tone: Silero takes no tone for speech, which is what the fallback needs."""
    t = np.arange(int(seconds * SAMPLING_RATE)) / SAMPLING_RATE
    return (0.5 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)


def all_speech(monkeypatch: pytest.MonkeyPatch) -> None:
    """Silero stood in for: every chunk of audio is speech."""

    def stamps(chunk: np.ndarray, _options: Any) -> list[dict[str, int]]:
        return [{"start": 0, "end": int(chunk.shape[0])}]

    monkeypatch.setattr("faster_whisper.vad.get_speech_timestamps", stamps)


def test_nothing_is_detected_when_the_language_is_known() -> None:
    assert known_without_model(JobOptions(language="de"), True) == Detection("de", 1.0)
    assert known_without_model(JobOptions(), False) == Detection("en", 1.0)  # tiny.en
    assert known_without_model(JobOptions(expected_languages=("fr",)), True) == Detection("fr", 1.0)
    assert known_without_model(JobOptions(expected_languages=("fr", "de")), True) is None
    assert known_without_model(JobOptions(), True) is None


def test_expected_languages_limit_the_choice_with_the_models_own_probability(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    every = [("de", 0.6), ("nl", 0.2), ("en", 0.1), ("fr", 0.1)]
    assert _among(every, ()) == every
    assert _among(every, ("en", "nl")) == [("nl", 0.2), ("en", 0.1)]
    assert _among([("de", 1.0)], ("en", "nl")) == [("en", 0.0), ("nl", 0.0)]
    # Unsure among them: the threshold sends it on to the next window, which decides.
    all_speech(monkeypatch)
    model = ScriptedModel({"de": 0.6, "nl": 0.2}, {"nl": 0.7, "de": 0.2})
    found = detect(model, [tone(70)], DetectionRules(2, 0.5, ("en", "nl")))
    assert found == Detection("nl", 0.7)


def test_without_speech_the_first_window_decides() -> None:
    model = ScriptedModel({"en": 0.4, "de": 0.3})
    found = detect(model, [tone(50)], DetectionRules(3, 0.5))
    assert found == Detection("en", 0.4)
    assert model.heard == [WINDOW]  # the start, as faster-whisper hears it


def test_a_sure_window_decides_else_the_best_mean_over_the_windows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    all_speech(monkeypatch)
    audio = [tone(70)]
    sure = ScriptedModel({"fr": 0.3, "de": 0.2}, {"de": 0.8, "fr": 0.1})
    assert detect(sure, audio, DetectionRules(3, 0.5)) == Detection("de", 0.8)
    assert sure.heard == [WINDOW, WINDOW]  # the third window is not needed
    unsure = ScriptedModel({"fr": 0.4, "de": 0.3}, {"de": 0.4, "fr": 0.1}, {"de": 0.4})
    found = detect(unsure, audio, DetectionRules(3, 0.5))
    assert (found.language, found.probability) == ("de", pytest.approx(1.1 / 3))
    assert unsure.heard == [WINDOW, WINDOW, 10 * SAMPLING_RATE]
    one = ScriptedModel({"fr": 0.4, "de": 0.3})
    assert detect(one, audio, DetectionRules(1, 0.5)) == Detection("fr", 0.4)


def test_a_short_last_window_is_no_vote(monkeypatch: pytest.MonkeyPatch) -> None:
    all_speech(monkeypatch)
    model = ScriptedModel({"fr": 0.4})
    assert detect(model, [tone(33)], DetectionRules(2, 0.5)) == Detection("fr", 0.4)
    assert model.heard == [WINDOW]


def test_a_second_of_speech_in_an_hour_of_noise_is_no_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def one_second(chunk: np.ndarray, _options: Any) -> list[dict[str, int]]:
        return [{"start": 0, "end": SAMPLING_RATE}]

    monkeypatch.setattr("faster_whisper.vad.get_speech_timestamps", one_second)
    model = ScriptedModel({"en": 0.3})
    assert detect(model, [tone(60), tone(60)], DetectionRules(1, 0.5)) == Detection("en", 0.3)
    assert model.heard == [WINDOW]  # the start, not the two seconds


def test_the_search_stops_once_it_has_enough_speech(monkeypatch: pytest.MonkeyPatch) -> None:
    all_speech(monkeypatch)
    read = 0

    def film() -> Any:
        nonlocal read
        for _ in range(100):  # 100 minutes, a minute at a time
            read += 1
            yield tone(60)

    detect(ScriptedModel({"de": 0.9}), film(), DetectionRules(2, 0.5))
    assert read == 1


def test_audio_is_regrouped_into_chunks() -> None:
    blocks = [np.arange(n, dtype=np.float32) for n in (3, 5, 1, 7)]
    chunks = list(_chunks(blocks, 4))
    assert [c.shape[0] for c in chunks] == [4, 4, 4, 4]
    assert np.concatenate(chunks).tolist() == np.concatenate(blocks).tolist()
    assert [c.shape[0] for c in _chunks([np.zeros(9, np.float32)], 4)] == [4, 4, 1]


def test_the_options_come_from_settings_inboxes_and_requests(tmp_path: Path) -> None:
    defaults = load_settings().job_options()
    assert defaults.language_detection_segments == LANGUAGE_DETECTION_SEGMENTS
    assert defaults.language_detection_threshold == LANGUAGE_DETECTION_THRESHOLD
    assert defaults.expected_languages == ()
    service = load_settings(expected_languages="DE, en", language_detection_segments=3)
    assert service.job_options().expected_languages == ("de", "en")
    inbox = _inbox(
        InboxSettings.model_validate(
            f"{tmp_path}?expected_languages=nl+en&language_detection_threshold=0.8"
        ),
        service,
    ).options
    assert (inbox.expected_languages, inbox.language_detection_threshold) == (("en", "nl"), 0.8)
    assert inbox.language_detection_segments == 3
    # A flag's items may be comma lists ("--expected-languages de,en", repeated or not).
    flagged = load_settings(expected_languages=["de, en", "fr"]).job_options()
    assert flagged.expected_languages == ("de", "en", "fr")
    # The inbox's (or a request's) languages are chosen among, whatever the service's language.
    english = load_settings(language="en")
    assert english.job_options().language == "en"
    own = _inbox(InboxSettings.model_validate(f"{tmp_path}?expected_languages=de+fr"), english)
    assert (own.options.language, own.options.expected_languages) == (None, ("de", "fr"))
    fixed = _inbox(
        InboxSettings.model_validate(f"{tmp_path}?expected_languages=de+fr&language=it"), english
    )
    assert fixed.options.language == "it"
    asked = OptionsIn(expected_languages=["fr", "de"]).options(english.job_options())
    assert (asked.language, asked.expected_languages) == (None, ("de", "fr"))
    assert OptionsIn().options(english.job_options()).language == "en"
    with pytest.raises(ValidationError, match="names languages, not 'auto'"):
        OptionsIn.from_form({"expected_languages": "fr,auto"})
    form = OptionsIn.from_form({"expected_languages": "fr, de", "language_detection_segments": "2"})
    options = form.options(service.job_options())
    assert (options.expected_languages, options.language_detection_segments) == (("de", "fr"), 2)
    with pytest.raises(SettingError, match="unknown language 'xx'"):
        load_settings(expected_languages="de,xx")
    with pytest.raises(ValidationError):
        OptionsIn(language_detection_segments=0)


def test_a_job_stored_before_detection_options_reads_with_the_defaults() -> None:
    options = stored_options({"language": None, "formats": ["txt"]})
    assert options.unusable is None
    assert options.language_detection_segments == LANGUAGE_DETECTION_SEGMENTS
    assert options.expected_languages == ()
