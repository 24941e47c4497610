"""The engine a worker loads is named by a setting (module:Class), and the fake one the
supervision tests use does what its source file's plan says, in this process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.fake_engine import FAKE_ENGINE, FakeEngine, in_process, plan
from tests.helpers.media import FIXTURES
from whisper_transcriber.db.values import JobOptions
from whisper_transcriber.service.settings import SettingError, load_settings
from whisper_transcriber.worker.defaults import DEFAULT_ENGINE
from whisper_transcriber.worker.engine import Engine, EngineNotFound, engine_class
from whisper_transcriber.worker.media import MediaError


def test_the_engine_setting_names_a_class_imported_on_demand() -> None:
    assert load_settings().engine == DEFAULT_ENGINE
    assert engine_class(DEFAULT_ENGINE) is Engine
    assert engine_class(load_settings(engine=FAKE_ENGINE).engine) is FakeEngine
    with pytest.raises(EngineNotFound, match=r"cannot import engine nowhere\.at_all:Engine"):
        engine_class("nowhere.at_all:Engine")
    with pytest.raises(EngineNotFound, match="is not a class"):
        engine_class("whisper_transcriber.worker.defaults:DEFAULT_ENGINE")
    with pytest.raises(SettingError, match="engine"):
        load_settings(engine="not a module path")


def test_a_plain_file_is_transcribed_at_once_into_a_transcript_naming_it() -> None:
    heard: list[str] = []
    transcript = in_process().transcribe(
        str(FIXTURES / "speech_a.wav"), JobOptions(), on_language=heard.append
    )
    assert heard == ["en"]
    assert transcript.text == "Fake transcript of speech_a.wav."


def test_a_planned_job_works_its_time_reporting_progress(tmp_path: Path) -> None:
    progress: list[float] = []
    source = plan(tmp_path / "talk.wav", work_s=0.3, text="As planned.")
    transcript = in_process().transcribe(str(source), JobOptions(), on_progress=progress.append)
    assert transcript.text == "As planned."
    assert len(progress) > 1 and progress == sorted(progress)
    assert progress[0] > 0 and progress[-1] < 1


def test_a_planned_job_works_until_its_file_appears_or_it_is_stopped(tmp_path: Path) -> None:
    finish = tmp_path / "finish"
    source = plan(tmp_path / "talk.wav", until=finish)
    seen: list[float] = []

    def finish_when_seen_working(fraction: float) -> None:
        seen.append(fraction)
        if len(seen) == 3:
            finish.touch()

    in_process().transcribe(str(source), JobOptions(), on_progress=finish_when_seen_working)
    assert len(seen) == 3

    class Stopped(Exception):
        pass

    def stop(_fraction: float) -> None:
        raise Stopped

    finish.unlink()
    with pytest.raises(Stopped):
        in_process().transcribe(str(source), JobOptions(), on_progress=stop)


def test_a_planned_failure_is_raised(tmp_path: Path) -> None:
    engine = in_process()
    with pytest.raises(RuntimeError, match=r"^retry me$"):
        engine.transcribe(str(plan(tmp_path / "a.wav", fail="retry me")), JobOptions())
    with pytest.raises(MediaError, match=r"^not audio$"):
        engine.transcribe(str(plan(tmp_path / "b.wav", bad_media="not audio")), JobOptions())
