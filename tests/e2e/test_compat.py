"""whisper-asr-webservice's endpoints against a real `serve`, called as Bazarr calls them."""

from __future__ import annotations

import wave
from pathlib import Path

from tests.helpers.apps import app_for
from tests.helpers.media import FIXTURES
from tests.helpers.service import running_service
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.values import JobQuery

KEYWORDS = ("museum", "painting")


def raw_pcm(fixture: str) -> bytes:
    """What Bazarr sends with encode=false: headerless 16 kHz mono s16le."""
    with wave.open(str(FIXTURES / fixture), "rb") as source:
        assert (source.getframerate(), source.getnchannels(), source.getsampwidth()) == (
            16000,
            1,
            2,
        )
        return source.readframes(source.getnframes())


def test_asr_and_detect_language_as_bazarr_calls_them(database_url: str, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with running_service(
        "--database-url", database_url, "--inbox", inbox, cwd=tmp_path
    ) as service:  # fmt: skip
        client = service.client
        client.timeout = 120
        # Bazarr: raw PCM, encode=false, srt, the audio's language, and a video_file it passes.
        bazarr = client.post(
            "/asr",
            params={"task": "transcribe", "language": "en", "output": "srt", "encode": "false",
                    "video_file": "/movies/Movie (2020).mkv"},
            files={"audio_file": ("audio_file", raw_pcm("speech_a.wav"))},
        )  # fmt: skip
        assert bazarr.status_code == 200, bazarr.text
        assert bazarr.headers["asr-engine"] == "faster_whisper"
        srt = bazarr.text
        assert srt.startswith("1\n00:00:00,000 --> ") and all(k in srt.lower() for k in KEYWORDS)

        # Bazarr sends it again after its own time-out: the same job answers, nothing is redone.
        retried = client.post(
            "/asr",
            params={"task": "transcribe", "language": "en", "output": "srt", "encode": "false",
                    "video_file": "/movies/Movie (2020).mkv"},
            files={"audio_file": ("audio_file", raw_pcm("speech_a.wav"))},
        )  # fmt: skip
        assert retried.status_code == 200 and retried.text == srt
        assert retried.headers["location"] == bazarr.headers["location"]

        # Any container, decoded by the service (encode=true is the default), json output.
        flac = client.post(
            "/asr",
            params={"output": "json", "word_timestamps": "true"},
            files={"audio_file": ("talk.flac", (FIXTURES / "speech_b.flac").read_bytes())},
        )
        assert flac.status_code == 200, flac.text
        body = flac.json()
        assert "quarterly" in body["text"].lower() and body["language"] == "en"
        assert body["segments"][0]["words"]

        detected = client.post(
            "/detect-language",
            params={"encode": "false"},
            files={"audio_file": ("audio_file", raw_pcm("speech_a.wav"))},
        )
        assert detected.status_code == 200, detected.text
        assert detected.json() == {
            "detected_language": "english",
            "language_code": "en",
            "confidence": 1.0,
        }

        broken = client.post("/asr", files={"audio_file": ("x.mp3", b"this is not audio")})
        assert broken.status_code == 422
        assert "cannot decode" in broken.json()["detail"]
        assert client.post("/asr", files={"other": ("x", b"1")}).status_code == 400

        # Every request is a job in the history like any other.
        history = client.get("/jobs", params={"source": "upload"}).json()["items"]
        assert [job["status"] for job in history] == ["failed", "done", "done", "done"]
        assert service.stop() == 0


def test_asr_refuses_a_language_whisper_does_not_know(store: JobStore, tmp_path: Path) -> None:
    with app_for(store, tmp_path) as client:
        response = client.post(
            "/asr",
            params={"language": "klingon", "output": "srt"},
            files={"audio_file": ("audio_file", raw_pcm("speech_a.wav"))},
        )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith("language: unknown language 'klingon'; Whisper knows af, am, ar, ")
    assert not (tmp_path / "uploads").exists()  # refused before the upload was read
    assert store.list_jobs(JobQuery(), 100) == []
