"""Models by name through the API: GET /models and /v1/models list the configured ones (with the
workers that hold each), and a request naming any other is refused with the names there are."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tests.helpers.apps import app_for
from whisper_transcriber.api.app_context import ConfiguredModel
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.values import JobOptions, JobQuery
from whisper_transcriber.db.worker_registry import WorkerRegistry, WorkerRole, WorkerState

MODELS = {"accurate": ConfiguredModel("small", "int8")}
NAMES = "default, accurate"


def client(store: JobStore, tmp_path: Path) -> TestClient:
    return app_for(store, tmp_path, default_model=ConfiguredModel("bundled", "auto"), models=MODELS)


def test_models_are_listed_with_the_workers_that_hold_them(store: JobStore, tmp_path: Path) -> None:
    registry = WorkerRegistry(store.engine)
    registry.register("w:1:1", "box", WorkerRole.SERVICE)
    registry.beat("w:1:1", WorkerState.IDLE, None, ["default", "accurate"])
    registry.register("w:2:2", "box", WorkerRole.SERVICE)
    registry.beat("w:2:2", WorkerState.IDLE, None, ["default"])
    registry.register("w:3:3", "box", WorkerRole.SERVICE)
    registry.beat("w:3:3", WorkerState.IDLE, None, ["default", "accurate"])
    registry.stopped("w:3:3")  # a stopped worker holds nothing
    with client(store, tmp_path) as api:
        listed = api.get("/models").json()
        assert listed == [
            {
                "name": "default",
                "model": "bundled",
                "compute_type": "auto",
                "default": True,
                "loaded_by": 2,
            },
            {
                "name": "accurate",
                "model": "small",
                "compute_type": "int8",
                "default": False,
                "loaded_by": 1,
            },
        ]
        assert api.get("/options").json()["models"] == ["default", "accurate"]
        openai = api.get("/v1/models").json()
        assert [model["id"] for model in openai["data"]] == ["whisper-1", "accurate"]


def test_a_request_names_a_model_or_is_refused_with_the_names(
    store: JobStore, tmp_path: Path
) -> None:
    audio = tmp_path / "talk.wav"
    audio.write_bytes(b"audio")
    with client(store, tmp_path) as api:
        refused = api.post("/transcribe", json={"path": str(audio), "model": "large-v3"})
        assert refused.status_code == 400
        assert refused.json()["detail"] == f"unknown model 'large-v3'; the models are: {NAMES}"
        assert store.list_jobs(JobQuery(), 10) == []
        named = api.post("/transcribe", json={"path": str(audio), "model": "accurate"})
        assert named.status_code == 202, named.text
        assert named.json()["options"]["model"] == "accurate"
        # Naming the default is the same work as naming none: the same job answers.
        default = api.post("/transcribe", json={"path": str(audio), "model": "default"})
        unnamed = api.post("/transcribe", json={"path": str(audio)})
        assert default.json()["id"] == unnamed.json()["id"] != named.json()["id"]


def test_an_upload_or_an_openai_request_for_an_unknown_model_leaves_nothing(
    store: JobStore, tmp_path: Path
) -> None:
    with client(store, tmp_path) as api:
        upload = api.post(
            "/transcribe", files={"file": ("a.wav", b"audio")}, data={"model": "tiny"}
        )
        assert upload.status_code == 400
        assert NAMES in upload.json()["detail"]
        openai = api.post(
            "/v1/audio/transcriptions", files={"file": ("a.wav", b"audio")}, data={"model": "tiny"}
        )
        assert openai.status_code == 400
        assert NAMES in openai.json()["detail"]
    assert store.list_jobs(JobQuery(), 10) == []
    assert not any(path.is_file() for path in (tmp_path / "uploads").rglob("*"))


def test_a_job_whose_model_is_gone_is_not_run_again(store: JobStore, tmp_path: Path) -> None:
    """Its model was removed from the settings: no worker would take it again (409 says why)."""
    audio = tmp_path / "talk.wav"
    audio.write_bytes(b"audio")
    job, _ = store.enqueue(audio, JobOptions(model="retired"), "api")
    store.cancel(job.id)
    with client(store, tmp_path) as api:
        for action in ("retry", "run-again"):
            refused = api.post(f"/jobs/{job.id}/{action}")
            assert refused.status_code == 409, action
            assert refused.json()["detail"] == f"unknown model 'retired'; the models are: {NAMES}"
    assert [queued.id for queued in store.list_jobs(JobQuery(), 10)] == [job.id]
    assert store.get(job.id).status.value == "cancelled"
