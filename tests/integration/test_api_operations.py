"""Operations endpoints and cross-cutting API behaviour: the API key, readable errors, /ready
against a database that goes away, and /metrics after real jobs."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.apps import app_for
from tests.helpers.media import FIXTURES
from tests.helpers.postgres import POSTGRES_ADMIN_URL
from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.values import JobOptions
from whisper_transcriber.worker.confinement import Confinement
from whisper_transcriber.worker.engine import Engine, resolve_model
from whisper_transcriber.worker.job_runner import run_job


def test_an_api_key_guards_everything_but_health(store: JobStore, tmp_path: Path) -> None:
    with app_for(store, tmp_path, api_key="s3cret key") as client:
        assert client.get("/health").status_code == 200
        for path in ("/jobs", "/jobs/1", "/ready", "/metrics", "/openapi.json", "/docs"):
            response = client.get(path)
            assert response.status_code == 401, path
            assert response.json() == {"detail": "an API key is required"}
            assert response.headers["www-authenticate"] == "Bearer"
        wrong = client.get("/jobs", headers={"authorization": "Bearer nope"})
        assert (wrong.status_code, wrong.json()["detail"]) == (401, "the API key is wrong")
        assert client.post("/transcribe", json={"path": "/x"}).status_code == 401
        assert (
            client.get("/jobs", headers={"authorization": "Bearer s3cret key"}).status_code == 200
        )
        assert client.get("/jobs", headers={"x-api-key": "s3cret key"}).status_code == 200
        schema = client.get("/openapi.json", headers={"x-api-key": "s3cret key"}).json()
        assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}
        assert schema["paths"]["/health"]["get"]["security"] == []
    with app_for(store, tmp_path) as open_client:  # no key set: nothing asks for one
        assert open_client.get("/jobs").status_code == 200


def test_errors_are_readable_json(store: JobStore, tmp_path: Path) -> None:
    with app_for(store, tmp_path) as client:
        response = client.get("/jobs", params={"limit": 0, "status": "lost"})
        assert response.status_code == 422
        detail = response.json()["detail"]
        assert "limit: Input should be greater than or equal to 1" in detail
        assert "status: Input should be" in detail
        missing = client.get("/jobs/424242")
        assert missing.json() == {"detail": "job 424242 does not exist"}


def test_ready_reports_a_database_that_went_away(postgres_url: str, tmp_path: Path) -> None:
    engine = make_engine(postgres_url)
    store = JobStore(engine)
    with app_for(store, tmp_path) as client:
        assert client.get("/ready").json() == {"ready": True, "problems": []}
        # No engine.dispose() here: the change feed's thread may hold a connection at that
        # moment, and a disposed pool never closes it (psycopg then warns when it is collected).
        # FORCE ends every session; pre-ping throws the dead ones away on their next checkout.
        database = postgres_url.rsplit("/", 1)[1]
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
        response = client.get("/ready")
        assert response.status_code == 503
        [problem] = response.json()["problems"]
        assert problem.startswith("database unreachable:")
        assert client.get("/jobs").status_code == 503  # the same, for any query
    engine.dispose()


def test_metrics_after_real_jobs(store: JobStore, tmp_path: Path) -> None:
    model = Engine(resolve_model("bundled"), "cpu", "int8", cpu_threads=1)
    for name in ("speech_a.wav", "speech_c.ogg"):
        store.enqueue(
            Path(shutil.copy(FIXTURES / name, tmp_path)), JobOptions(formats=("txt",)), "api"
        )
    claimed = store.claim("w")
    assert claimed is not None
    run_job(store, model, claimed, Confinement.of([tmp_path]))
    with app_for(store, tmp_path) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    assert samples[("whisper_transcriber_jobs", (("status", "done"),))] == 1
    assert samples[("whisper_transcriber_jobs", (("status", "queued"),))] == 1
    assert samples[("whisper_transcriber_jobs", (("status", "failed"),))] == 0
    assert samples[("whisper_transcriber_queue_depth", ())] == 1
    audio = samples[("whisper_transcriber_audio_seconds_total", ())]
    processing = samples[("whisper_transcriber_processing_seconds_total", ())]
    assert audio > 1 and processing > 0
    assert samples[("whisper_transcriber_real_time_factor", ())] == audio / processing
