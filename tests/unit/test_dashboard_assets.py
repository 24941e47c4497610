"""The dashboard's files: served by the app without the key, and complete (tests/e2e/test_packaging.py
checks the wheel carries every one)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.helpers.paths import REPOSITORY
from whisper_transcriber.api.app import create_app
from whisper_transcriber.api.app_context import ApiContext
from whisper_transcriber.api.routes.ui import UI_DIR
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.values import JobOptions

ROOT = REPOSITORY
IMPORT = re.compile(r"""(?:import|from)\s*(?:[\w{}\s,*]+from\s*)?["'](\.{1,2}/[^"']+)["']""")


@pytest.fixture
def keyed(store: JobStore, tmp_path: Path) -> TestClient:
    context = ApiContext(
        store=store, default_options=JobOptions(), allowed_roots=[tmp_path], api_key="k"
    )
    return TestClient(create_app(context))


def test_the_page_and_its_assets_need_no_key_but_the_data_does(keyed: TestClient) -> None:
    page = keyed.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert '<script type="module" src="/ui/js/app.js">' in page.text
    script = keyed.get("/ui/js/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert keyed.get("/ui/style.css").status_code == 200
    for guarded in ("/options", "/status", "/jobs", "/events", "/jobs/1/audio-link"):
        assert keyed.get(guarded).status_code == 401, guarded
    assert keyed.get("/ui/../options").status_code in (401, 404)


def test_every_module_the_page_imports_is_served(keyed: TestClient) -> None:
    """Follows the import graph from app.js through the app: a missing or misnamed module
    would leave the page blank."""
    pending, seen = ["/ui/js/app.js"], set()
    while pending:
        url = pending.pop()
        if url in seen:
            continue
        seen.add(url)
        response = keyed.get(url)
        assert response.status_code == 200, url
        base = url.rsplit("/", 1)[0]
        for relative in IMPORT.findall(response.text):
            parts = [*base.split("/"), *relative.split("/")]
            resolved: list[str] = []
            for part in parts:
                if part == "..":
                    resolved.pop()
                elif part != ".":
                    resolved.append(part)
            pending.append("/".join(resolved))
    served = {url.removeprefix("/ui/") for url in seen}
    on_disk = {str(p.relative_to(UI_DIR)) for p in UI_DIR.rglob("*.js")}
    assert served == on_disk  # and no module lies unused
