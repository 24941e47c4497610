"""Requests that used to reach the database or the file system and answer 500: naive or
out-of-range times in GET /jobs, and paths too long for the file system in POST /transcribe."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.apps import app_for
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.values import JobQuery


@pytest.mark.parametrize("name", ["since", "until"])
@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("2026-01-31T12:00:00", "Input should have timezone info"),
        ("2026-01-31", "Input should have timezone info"),
        ("9999-12-31T23:00:00-05:00", "out of range: in UTC it falls outside the years 1 to 9999"),
        ("0001-01-01T00:00:00+05:00", "out of range: in UTC it falls outside the years 1 to 9999"),
    ],
)
def test_naive_or_overflowing_times_are_422(
    store: JobStore, tmp_path: Path, name: str, given: str, said: str
) -> None:
    with app_for(store, tmp_path) as client:
        response = client.get("/jobs", params={name: given})
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(f"{name}: ")
    assert said in response.json()["detail"]


@pytest.mark.parametrize(
    "given", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "2026-01-31T13:00:00+01:00"]
)
def test_the_edges_of_the_calendar_with_an_offset_are_fine(
    store: JobStore, tmp_path: Path, given: str
) -> None:
    with app_for(store, tmp_path) as client:
        for name in ("since", "until"):
            response = client.get("/jobs", params={name: given})
            assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "tail",
    ["/a" * 2500, "/" + "a" * 300, "/" + "é" * 128],  # a 5,000-character path; components > 255 B
)
def test_paths_too_long_for_the_file_system_are_400(
    store: JobStore, tmp_path: Path, tail: str
) -> None:
    with app_for(store, tmp_path) as client:
        response = client.post("/transcribe", json={"path": f"{tmp_path}{tail}"})
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == "not a valid path: File name too long"


def test_the_home_of_no_user_is_400(store: JobStore, tmp_path: Path) -> None:
    """Found by the schema fuzzer: "~0" asks for the home of a user named 0 (a 500 before)."""
    with app_for(store, tmp_path) as client:
        response = client.post("/transcribe", json={"path": "~0"})
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == "not a valid path: no home folder for ~0"


def test_an_unknown_language_is_422_with_the_valid_codes(store: JobStore, tmp_path: Path) -> None:
    (tmp_path / "talk.wav").write_bytes(b"RIFF")
    uploads = tmp_path / "uploads"
    with app_for(store, tmp_path) as client:
        by_path = client.post(
            "/transcribe", json={"path": str(tmp_path / "talk.wav"), "language": "xx"}
        )
        uploaded = client.post(
            "/transcribe", files={"file": ("a.wav", b"RIFF")}, data={"language": "english"}
        )
        capitals = client.post(
            "/transcribe", json={"path": str(tmp_path / "talk.wav"), "language": "DE"}
        )
    for response, given in ((by_path, "xx"), (uploaded, "english")):
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert detail.startswith(f"language: unknown language '{given}'; Whisper knows af, am, ")
        assert detail.endswith(", zh, yue")
    assert not uploads.exists() or not any(uploads.rglob("*.wav"))  # the upload was discarded
    assert capitals.status_code == 202, capitals.text
    assert capitals.json()["options"]["language"] == "de"  # Whisper's code, in lower case
    assert [job.id for job in store.list_jobs(JobQuery(), 100)] == [capitals.json()["id"]]
