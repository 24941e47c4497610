"""OpenAI's audio API against a real `serve`, with the official `openai` package as the client
(and an API key set, which it sends as a Bearer token)."""

from __future__ import annotations

import warnings
from pathlib import Path

import openai
import pytest

from tests.helpers.apps import app_for
from tests.helpers.cli import clean_env
from tests.helpers.media import FIXTURES
from tests.helpers.service import running_service
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.values import JobQuery

API_KEY = "sk-local-test"


def test_the_official_client_works_unchanged(database_url: str, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    env = clean_env(WHISPER_TRANSCRIBER_API_KEY=API_KEY)
    with running_service(
        "--database-url", database_url, "--inbox", inbox, cwd=tmp_path, env=env
    ) as service:  # fmt: skip
        client = openai.OpenAI(base_url=f"{service.base_url}/v1", api_key=API_KEY, timeout=120)
        assert [model.id for model in client.models.list()] == ["whisper-1"]

        with (FIXTURES / "speech_a.wav").open("rb") as audio:
            plain = client.audio.transcriptions.create(model="whisper-1", file=audio)
        assert "museum" in plain.text.lower()
        # A client that retries: the same job answers (the history below has it once).
        with (FIXTURES / "speech_a.wav").open("rb") as audio:
            again = client.audio.transcriptions.create(model="whisper-1", file=audio)
        assert again.text == plain.text

        with (FIXTURES / "speech_b.flac").open("rb") as audio:
            verbose = client.audio.transcriptions.create(
                model="whisper-1",
                file=audio,
                language="en",
                response_format="verbose_json",
                timestamp_granularities=["word", "segment"],
                temperature=0.0,
            )
        assert verbose.language == "english" and verbose.duration > 1
        assert "quarterly" in verbose.text.lower()
        assert verbose.segments and verbose.segments[0].end > verbose.segments[0].start
        assert verbose.words and {w.word.lower().strip(",.") for w in verbose.words} >= {
            "quarterly",
            "report",
        }

        with (FIXTURES / "speech_c.ogg").open("rb") as audio:
            srt = client.audio.transcriptions.create(
                model="whisper-1", file=audio, response_format="srt"
            )
        assert isinstance(srt, str) and srt.startswith("1\n00:00:00,000 --> ")
        assert "elephant" in srt.lower()

        # The client marks translations deprecated on OpenAI's side; the endpoint still exists.
        with warnings.catch_warnings(), (FIXTURES / "speech_a.wav").open("rb") as audio:
            warnings.simplefilter("ignore", DeprecationWarning)
            translated = client.audio.translations.create(
                model="whisper-1", file=audio, response_format="text"
            )
        assert "museum" in str(translated).lower()

        with pytest.raises(openai.UnprocessableEntityError):
            client.audio.transcriptions.create(
                model="whisper-1", file=("notes.mp3", b"not audio at all")
            )
        stranger = openai.OpenAI(base_url=f"{service.base_url}/v1", api_key="wrong")
        with pytest.raises(openai.AuthenticationError):
            stranger.models.list()

        history = service.client.get(
            "/jobs", params={"source": "upload"}, headers={"x-api-key": API_KEY}
        ).json()["items"]
        assert [job["status"] for job in history] == ["failed", "done", "done", "done", "done"]
        assert history[1]["options"]["task"] == "translate"
        assert service.stop() == 0


def test_an_unknown_language_is_422(store: JobStore, tmp_path: Path) -> None:
    with app_for(store, tmp_path) as client:
        response = client.post(
            "/v1/audio/transcriptions",
            files={"file": ("a.wav", (FIXTURES / "speech_a.wav").read_bytes())},
            data={"model": "whisper-1", "language": "xx"},
        )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith("language: unknown language 'xx'; Whisper knows af, am, ar, ")
    assert not any((tmp_path / "uploads").rglob("*.wav"))  # the upload was discarded
    assert store.list_jobs(JobQuery(), 100) == []
