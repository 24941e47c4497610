"""The API app in this process, on a given job store, driven by Starlette's TestClient."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from whisper_transcriber.api.app import create_app
from whisper_transcriber.api.app_context import ApiContext
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.values import JobOptions


def app_for(store: JobStore, tmp_path: Path, **context: Any) -> TestClient:
    """The app on `store`, with files allowed under tmp_path and uploads kept there; `context`
    sets or overrides any other ApiContext field (api_key="...", workers=...)."""
    defaults: dict[str, Any] = {
        "default_options": JobOptions(),
        "allowed_roots": [tmp_path],
        "uploads_dir": tmp_path / "uploads",
    }
    return TestClient(create_app(ApiContext(store=store, **{**defaults, **context})))
