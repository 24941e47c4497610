"""Full-text search over transcript history, on real transcripts, SQLite FTS5 and PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert

from tests.helpers.media import FIXTURES
from whisper_transcriber.api.app import create_app
from whisper_transcriber.api.app_context import ApiContext
from whisper_transcriber.api.routes.transcripts import marked
from whisper_transcriber.db.clock import utcnow
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.migrate import alembic_config, upgrade
from whisper_transcriber.db.store_base import JOBS, TRANSCRIPTS
from whisper_transcriber.db.transcript import Segment, Transcript
from whisper_transcriber.db.values import JobOptions
from whisper_transcriber.worker.confinement import Confinement
from whisper_transcriber.worker.engine import Engine as Model
from whisper_transcriber.worker.engine import resolve_model
from whisper_transcriber.worker.job_runner import run_job


@pytest.fixture(scope="module")
def model() -> Model:
    return Model(resolve_model("bundled"), "cpu", "int8", cpu_threads=1)


def transcribe_fixtures(store: JobStore, model: Model, folder: Path) -> dict[str, int]:
    ids = {}
    for name in ("speech_a.wav", "speech_b.flac", "speech_c.ogg"):
        job, _ = store.enqueue(Path(shutil.copy(FIXTURES / name, folder)), JobOptions(), "api")
        claimed = store.claim("w")
        assert claimed is not None
        run_job(store, model, claimed, Confinement.of([folder]))
        ids[name] = job.id
    return ids


def test_search_finds_ranked_marked_segments_with_their_time(
    store: JobStore, model: Model, tmp_path: Path
) -> None:
    ids = transcribe_fixtures(store, model, tmp_path)
    context = ApiContext(store=store, default_options=JobOptions(), allowed_roots=[tmp_path])
    with TestClient(create_app(context)) as client:
        response = client.get("/transcripts/search", params={"q": "Museum"})
        assert response.status_code == 200
        [hit] = response.json()["items"]
        assert hit["job_id"] == ids["speech_a.wav"]
        assert hit["source_path"] == str(tmp_path / "speech_a.wav")
        assert "<mark>museum</mark>" in hit["snippet"].lower()
        transcript = store.transcript(hit["job_id"])
        assert transcript is not None
        assert (hit["start"], hit["end"]) in [(s.start, s.end) for s in transcript.segments]
        assert hit["links"]["job"] == f"/jobs/{ids['speech_a.wav']}"

        def found(query: str) -> list[int]:
            result = client.get("/transcripts/search", params={"q": query})
            assert result.status_code == 200, result.text
            return [item["job_id"] for item in result.json()["items"]]

        assert found("favorite elephant") == [ids["speech_c.ogg"]]  # every word must match
        assert found("museum finance") == []
        assert found('museum" OR * NEAR(') == []  # the query's text is never search syntax
        assert found("REPORT") == [ids["speech_b.flac"]]
        assert client.get("/transcripts/search", params={"q": ""}).status_code == 422


def test_snippets_are_html_safe(store: JobStore, tmp_path: Path) -> None:
    source = tmp_path / "a.wav"
    source.write_bytes(b"x")
    job, _ = store.enqueue(source, JobOptions(), "api")
    claimed = store.claim("w")
    assert claimed is not None
    text = " The <script>alert(1)</script> tag & the marker"
    store.complete(
        job.id, claimed.attempts, Transcript("en", 1.0, 3.0, (Segment(0, 1.5, 3.0, text),))
    )
    [hit] = store.search("marker")
    # The database answers plain text and where the match lies; markup is the API's.
    assert [hit.snippet[start:end] for start, end in hit.matches] == ["marker"]
    assert "<mark>" not in hit.snippet and (hit.start, hit.end) == (1.5, 3.0)
    context = ApiContext(store=store, default_options=JobOptions(), allowed_roots=[tmp_path])
    with TestClient(create_app(context)) as client:
        response = client.get("/transcripts/search", params={"q": "marker"})
    [item] = response.json()["items"]
    # Escaped on SQLite; PostgreSQL's headline drops tag-like words: never live HTML either way.
    assert "<script>" not in item["snippet"] and "alert(1)" in item["snippet"]
    assert "<mark>marker</mark>" in item["snippet"] and "&amp;" in item["snippet"]


def test_marking_escapes_the_text_and_marks_only_the_matches() -> None:
    snippet = "a <b> & c"
    assert marked(snippet, ((0, 1), (8, 9))) == "<mark>a</mark> &lt;b&gt; &amp; <mark>c</mark>"
    assert marked(snippet, ()) == "a &lt;b&gt; &amp; c"


def test_the_migration_indexes_transcripts_made_before_it(db_engine: Engine) -> None:
    config = alembic_config()
    with db_engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0003")
    now = utcnow()
    with db_engine.begin() as conn:
        job_id = conn.execute(
            insert(JOBS)
            .values(
                source_path="/old.wav", source_size=1, source_mtime_ns=1, origin="api",
                options={}, status="done", attempts=1, max_attempts=3, run_after=now,
                progress=1.0, outputs=[], created_at=now, updated_at=now,
            )
            .returning(JOBS.c.id)
        ).scalar_one()  # fmt: skip
        conn.execute(
            insert(TRANSCRIPTS).values(
                job_id=job_id, language="en", language_probability=1.0, duration=4.0,
                text="Older words here.", created_at=now,
                segments=[{"id": 1, "start": 2.0, "end": 4.0, "text": " Older words here."}],
            )
        )  # fmt: skip
    upgrade(db_engine)
    [hit] = JobStore(db_engine).search("older")
    assert (hit.job_id, hit.start, hit.end) == (job_id, 2.0, 4.0)
