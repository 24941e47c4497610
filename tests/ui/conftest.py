"""A real service and Debian's Chromium, driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.helpers.browser import EXPECT_TIMEOUT_MS, chromium_path
from tests.helpers.service import Service, running_service, service_env


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path())
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert not errors, f"the page threw: {errors}"


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dashboard")
    (root / "inbox").mkdir()
    return root


@pytest.fixture(scope="module")
def service(folders: Path) -> Iterator[Service]:
    """One worker, an inbox the watcher scans (settled fast), files by path anywhere under
    `folders` (library/ is not watched), no API key; a second model, "twin" (the bundled
    weights in float32), that jobs may name."""
    env = service_env(
        WORKERS="1",
        MODELS='{"twin": {"model": "bundled", "compute_type": "float32"}}',
        SETTLE_S="0.5",
        DATABASE_URL=f"sqlite:///{folders}/jobs.db",
        ALLOWED_ROOTS=str(folders),
    )
    with running_service("--inbox", folders / "inbox", cwd=folders, env=env) as running:
        running.wait_for_workers(1)
        yield running
        running.stop()
