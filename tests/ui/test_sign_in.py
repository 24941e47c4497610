"""With an API key set, the page shows nothing until it is given, and keeps it until sign-out."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.helpers.media import FIXTURES, place
from tests.helpers.service import Service, running_service, service_env

KEY = "correct horse battery staple"


@pytest.fixture(scope="module")
def keyed_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("keyed")
    place(FIXTURES / "speech_a.wav", root / "inbox")
    env = service_env(WORKERS="1", SETTLE_S="0.5", API_KEY=KEY)
    with running_service("--inbox", root / "inbox", cwd=root, env=env) as running:
        running.client.headers["Authorization"] = f"Bearer {KEY}"
        yield running
        running.stop()


def test_nothing_is_shown_without_the_key(page: Page, keyed_service: Service) -> None:
    page.goto(keyed_service.base_url + "/#/jobs")
    expect(page.get_by_role("heading", name="API key")).to_be_visible()
    expect(page.get_by_label("Key", exact=True)).to_be_focused()
    expect(page.locator("#nav")).to_be_hidden()
    expect(page.locator("#glance")).to_be_hidden()
    expect(page.locator("main")).to_be_empty()

    page.get_by_label("Key", exact=True).fill("not the key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-in-error")).to_have_text("the API key is wrong")
    expect(page.locator("main")).to_be_empty()

    page.get_by_label("Key", exact=True).fill(KEY)
    page.get_by_label("Key", exact=True).press("Enter")
    expect(page.locator("tr[data-job-id]").first).to_be_visible()
    expect(page.locator("#live")).to_have_text("live")

    # Kept in the browser: a reload asks nothing.
    page.reload()
    expect(page.locator("tr[data-job-id]").first).to_be_visible()
    expect(page.locator("#sign-in")).to_be_hidden()

    # The audio plays through a signed link, since <audio> cannot send the key.
    keyed_service.wait_status(1, "done")
    page.goto(keyed_service.base_url + "/#/job/1")
    expect(page.locator(".segment").first).to_be_visible()
    src = page.locator("audio").get_attribute("src") or ""
    assert "signature=" in src
    page.wait_for_function("() => document.querySelector('audio')?.readyState >= 1")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="API key")).to_be_visible()
    expect(page.locator("main")).to_be_empty()
    page.reload()
    expect(page.get_by_role("heading", name="API key")).to_be_visible()
    assert page.evaluate("localStorage.length") == 0
