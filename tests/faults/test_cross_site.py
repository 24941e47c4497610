"""Cross-site and DNS-rebinding writes, tried by real pages in Debian's Chromium against a real
service, with and without an API key: none creates, cancels or retries a job, while a client
without a browser's headers and the service's own dashboard go on working."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Response, expect, sync_playwright

from tests.helpers.browser import EXPECT_TIMEOUT_MS, chromium_path
from tests.helpers.media import FIXTURES, place
from tests.helpers.service import Service, free_port, running_service, service_env

KEY = "not-a-cookie"
REBINDING_NAME = "attacker.example"
TRUSTED_ORIGIN = "http://trusted.example.org"
PUBLIC_NAME = "transcribe.example.org"
WRITES = ("POST", "PUT", "PATCH", "DELETE")

# Every way a page can send a write without the service's consent: fetch in cors mode (a
# preflight the service never grants), in no-cors mode (no preflight: it is sent), JSON disguised
# as text/plain, a multipart upload, and plain HTML forms (below), which a browser always sends.
ATTACKS = """
async ({api, source, cancelId, retryId, key}) => {
  const auth = key ? {"Authorization": "Bearer " + key} : {};
  const json = JSON.stringify({path: source});
  const upload = () => {
    const form = new FormData();
    form.append("file", new Blob(["RIFF....WAVEfmt "]), "evil.wav");
    return form;
  };
  const attempts = [
    [api + "/transcribe", {method: "POST", body: json,
      headers: {"content-type": "application/json", ...auth}}],
    [api + "/transcribe", {method: "POST", mode: "no-cors", body: json,
      headers: {"content-type": "text/plain"}}],
    [api + "/transcribe", {method: "POST", mode: "no-cors", body: upload()}],
    [api + "/transcribe", {method: "POST", body: upload(), headers: auth}],
    [api + "/jobs/" + cancelId, {method: "DELETE", headers: auth}],
    [api + "/jobs/" + cancelId, {method: "DELETE", mode: "no-cors"}],
    [api + "/jobs/" + retryId + "/retry", {method: "POST", headers: auth}],
    [api + "/jobs/" + retryId + "/retry", {method: "POST", mode: "no-cors"}],
  ];
  const outcomes = [];
  for (const [url, init] of attempts) {
    try {
      const response = await fetch(url, init);
      outcomes.push(response.type + " " + response.status);
    } catch (error) {
      outcomes.push("refused by the browser: " + error.message);
    }
  }
  return outcomes;
}
"""

FORMS = """<!doctype html><title>a page of another site</title>
<iframe name="sink"></iframe>
<form id="retry" method="post" action="{api}/jobs/{retry_id}/retry" target="sink"></form>
<form id="json" method="post" action="{api}/transcribe" enctype="text/plain" target="sink">
  <input name='{{"path": "{source}", "x": "' value='"}}'>
</form>
<form id="upload" method="post" action="{api}/transcribe" enctype="multipart/form-data"
      target="sink"><input type="file" name="file"></form>
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium that resolves the rebinding name to the loopback, as the attacker's DNS does once
    its page is loaded. Its Local Network Access checks are off, as in a browser without them:
    the service must hold by itself."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path(),
            args=[
                f"--host-resolver-rules=MAP {REBINDING_NAME} 127.0.0.1",
                "--disable-features=LocalNetworkAccessChecks,PrivateNetworkAccessChecks",
            ],
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    yield context.new_page()
    context.close()


class Target:
    """The service under attack, its inbox, and the key its own clients use (if any)."""

    def __init__(self, service: Service, inbox: Path, key: str | None) -> None:
        self.service = service
        self.inbox = inbox
        self.key = key

    def jobs(self) -> dict[int, str]:
        items = self.service.client.get("/jobs", params={"limit": 500}).json()["items"]
        return {job["id"]: job["status"] for job in items}

    def queued_and_cancelled(self) -> tuple[int, int]:
        """A queued job to cancel and a cancelled one to retry (the same ones each time)."""
        queued = self.service.submit(self.inbox / "a.wav")
        cancelled = self.service.submit(self.inbox / "b.wav")
        if self.jobs()[queued] != "queued":
            assert self.service.client.post(f"/jobs/{queued}/retry").status_code == 200
        if self.jobs()[cancelled] != "cancelled":
            assert self.service.client.delete(f"/jobs/{cancelled}").status_code == 200
        return queued, cancelled


@pytest.fixture(scope="module", params=[None, KEY], ids=["no key", "with a key"])
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """The API alone (jobs stay queued), answering also to PUBLIC_NAME and to writes from the
    pages of TRUSTED_ORIGIN."""
    root = tmp_path_factory.mktemp("cross-site")
    for name in ("a.wav", "b.wav", "c.wav", "d.wav"):
        place(FIXTURES / "speech_a.wav", root / "inbox", name)
    settings = {"ALLOWED_HOSTS": PUBLIC_NAME, "ALLOWED_ORIGINS": TRUSTED_ORIGIN}
    if request.param:
        settings["API_KEY"] = request.param
    env = service_env(DATABASE_URL=f"sqlite:///{root / 'jobs.db'}", **settings)
    with running_service("--role", "api", "--inbox", root / "inbox", cwd=root, env=env) as s:
        if request.param:
            s.client.headers["Authorization"] = f"Bearer {request.param}"
        yield Target(s, root / "inbox", request.param)
        assert s.stop() == 0


@pytest.fixture
def other_site() -> Iterator[tuple[int, dict[str, bytes]]]:
    """A tiny web server for the attacker's page: (its port, {"html": the page it serves})."""
    served = {"html": b""}

    class PageHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(served["html"])))
            self.end_headers()
            self.wfile.write(served["html"])

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), PageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], served
    server.shutdown()
    server.server_close()


def writes_reaching(page: Page, base_url: str) -> list[tuple[str, str, int]]:
    """(method, url, status) of every write the page sends to base_url, as it happens."""
    reached: list[tuple[str, str, int]] = []

    def seen(response: Response) -> None:
        if response.url.startswith(base_url) and response.request.method in WRITES:
            reached.append((response.request.method, response.url, response.status))

    page.on("response", seen)
    return reached


@pytest.mark.parametrize("site", ["localhost", "127.0.0.1"], ids=["cross-site", "other port"])
def test_pages_of_other_sites_cannot_create_cancel_or_retry(
    page: Page, target: Target, other_site: tuple[int, dict[str, bytes]], site: str
) -> None:
    service = target.service
    cancel_id, retry_id = target.queued_and_cancelled()
    before = target.jobs()
    port, served = other_site
    source = str(target.inbox / "c.wav")
    served["html"] = FORMS.format(api=service.base_url, retry_id=retry_id, source=source).encode()
    reached = writes_reaching(page, service.base_url)
    page.goto(f"http://{site}:{port}/")

    arguments = {
        "api": service.base_url,
        "source": source,
        "cancelId": cancel_id,
        "retryId": retry_id,
        "key": target.key,
    }
    outcomes = page.evaluate(ATTACKS, arguments)
    assert len(outcomes) == 8 and all(" 2" not in outcome for outcome in outcomes), outcomes
    page.set_input_files(
        "#upload input", files=[{"name": "evil.wav", "mimeType": "audio/wav", "buffer": b"RIFF"}]
    )
    for form in ("retry", "json", "upload"):
        with page.expect_response(lambda r: r.request.method == "POST") as answered:
            page.eval_on_selector(f"#{form}", "form => form.submit()")
        assert answered.value.status == 403, (form, answered.value.text())
        assert "allowed_origins" in answered.value.json()["detail"]

    assert target.jobs() == before  # nothing created, cancelled or retried
    # The writes a browser sends without asking (no-cors fetches, forms) reached the service,
    # and it refused each before looking at a key.
    assert len(reached) >= 6, reached
    assert {status for _, _, status in reached} == {403}, reached


def test_a_rebinding_page_cannot_reach_the_service(page: Page, target: Target) -> None:
    """The attacker's page, loaded from attacker.example on the service's port; its name now
    leads to the loopback, so its requests are same-origin to the browser and reach the
    service with Host: attacker.example."""
    service = target.service
    port = int(service.base_url.rsplit(":", 1)[1])
    origin = f"http://{REBINDING_NAME}:{port}"
    cancel_id, retry_id = target.queued_and_cancelled()
    before = target.jobs()
    page.route(origin + "/evil.html", lambda route: route.fulfill(body="<title>evil</title>"))
    reached = writes_reaching(page, origin)
    page.goto(origin + "/evil.html")

    read = page.evaluate(
        "async () => { const r = await fetch('/jobs'); return [r.status, await r.text()]; }"
    )
    assert read[0] == 400 and "allowed_hosts" in read[1], read
    arguments = {
        "api": origin,
        "source": str(target.inbox / "c.wav"),
        "cancelId": cancel_id,
        "retryId": retry_id,
        "key": target.key,
    }
    outcomes = page.evaluate(ATTACKS, arguments)
    assert "basic 400" in outcomes and all(" 2" not in o for o in outcomes), outcomes
    assert target.jobs() == before
    assert reached and {status for _, _, status in reached} == {400}, reached


def test_requests_for_another_host_name_are_refused(target: Target) -> None:
    service = target.service
    port = service.base_url.rsplit(":", 1)[1]
    before = target.jobs()
    rebound = {"host": f"{REBINDING_NAME}:{port}", "origin": f"http://{REBINDING_NAME}:{port}"}
    for method, path in (("GET", "/jobs"), ("POST", "/transcribe"), ("GET", "/openapi.json")):
        body = {"path": str(target.inbox / "c.wav")} if method == "POST" else None
        refused = service.client.request(method, path, json=body, headers=rebound)
        assert refused.status_code == 400, refused.text
        assert refused.json()["detail"] == (
            f"'{REBINDING_NAME}:{port}' is not a name of this service (a DNS-rebinding page would "
            "send it); add it to the allowed_hosts setting, or '*' to answer to every name"
        )
    assert target.jobs() == before
    # Health checks call the service by any name.
    assert service.client.get("/health", headers=rebound).status_code == 200
    for host in (
        f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "whisper", "whisper:9000",
        "box.localhost", "nas.local", "gpu.internal", "pc.home.arpa", PUBLIC_NAME, "10.1.2.3",
        f"{socket.gethostname()}:{port}",
    ):  # fmt: skip
        assert service.client.get("/jobs", headers={"host": host}).status_code == 200, host
    for host in ("example.com", f"{PUBLIC_NAME}.attacker.example", "localhost.attacker.example"):
        assert service.client.get("/jobs", headers={"host": host}).status_code == 400, host


def test_clients_without_a_browser_and_the_dashboard_still_write(
    page: Page, target: Target
) -> None:
    service = target.service
    # As curl, Bazarr or the OpenAI SDK call it: no Origin, no Sec-Fetch-Site.
    created = service.client.post("/transcribe", json={"path": str(target.inbox / "d.wav")})
    assert created.status_code in (200, 202), created.text
    job_id = created.json()["id"]
    if target.jobs()[job_id] != "queued":
        assert service.client.post(f"/jobs/{job_id}/retry").status_code == 200
    assert service.client.delete(f"/jobs/{job_id}").status_code == 200
    # A page of an origin the settings allow may write; any other may not.
    trusted = service.client.post(f"/jobs/{job_id}/retry", headers={"origin": TRUSTED_ORIGIN})
    assert trusted.status_code == 200, trusted.text
    for headers in ({"origin": "http://evil.example"}, {"sec-fetch-site": "cross-site"}):
        refused = service.client.delete(f"/jobs/{job_id}", headers=headers)
        assert refused.status_code == 403, (headers, refused.text)
    assert target.jobs()[job_id] == "queued"

    # The dashboard, served by the service itself: its writes are same-origin.
    page.goto(service.base_url + "/#/jobs")
    if target.key:
        page.get_by_label("Key", exact=True).fill(target.key)
        page.get_by_role("button", name="Sign in").click()
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    row.get_by_role("button", name=f"Cancel job {job_id}").click()
    expect(row.locator(".badge")).to_have_text("cancelled")
    assert target.jobs()[job_id] == "cancelled"
    row.get_by_role("button", name=f"Retry job {job_id}").click()
    expect(row.locator(".badge")).to_have_text("queued")
    assert target.jobs()[job_id] == "queued"
