"""Debian's Chromium for the browser tests (never a downloaded browser), and their timeouts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page

# Playwright waits on conditions itself; this is how long any one of them may take.
EXPECT_TIMEOUT_MS = 60_000
JOB_TIMEOUT_MS = 180_000
PHONE = {"width": 390, "height": 844}


def chromium_path() -> str:
    """The system's Chromium: CHROMIUM names another. Missing fails, it never skips."""
    path = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if not path:
        pytest.fail("Chromium is not installed: apt-get install chromium (or set CHROMIUM)")
    return path


def screenshot(page: Page, name: str) -> None:
    """Into DASHBOARD_SCREENSHOTS when set (docs/screenshots is made so)."""
    folder = os.environ.get("DASHBOARD_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
