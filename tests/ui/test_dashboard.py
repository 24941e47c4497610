"""The dashboard in a real browser against a real service with real jobs (tiny.en, one worker)."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.helpers.browser import JOB_TIMEOUT_MS, PHONE, screenshot
from tests.helpers.media import FIXTURES, place
from tests.helpers.service import Service


def row(page: Page, job_id: int):  # type: ignore[no-untyped-def]
    return page.locator(f'tr[data-job-id="{job_id}"]')


def submitted_job(page: Page) -> int:
    """The job id the submit form reports."""
    outcome = page.locator(".outcome")
    expect(outcome).to_contain_text("Queued as job", timeout=JOB_TIMEOUT_MS)
    match = re.search(r"job (\d+)", outcome.inner_text())
    assert match, outcome.inner_text()
    return int(match.group(1))


def test_upload_runs_to_a_transcript_that_search_finds(
    page: Page, service: Service, long_speech: Path
) -> None:
    page.goto(service.base_url + "/#/submit")
    # The options start at the service's defaults: every format, transcribe, no VAD.
    for fmt in ("txt", "srt", "vtt", "json", "tsv"):
        expect(page.get_by_label(fmt, exact=True)).to_be_checked()
    expect(page.get_by_label("transcribe", exact=True)).to_be_checked()
    expect(page.get_by_label("Skip silence (VAD)")).not_to_be_checked()
    # Subtitle rules at the service's, and this job's lines narrower.
    expect(page.get_by_label("Cues made for reading (off: one cue per segment)")).to_be_checked()
    expect(page.get_by_label("Lines a cue")).to_have_value("2")
    page.get_by_label("Characters a line").fill("32")
    page.get_by_label("Hotwords").fill("museum, painting")
    # Language detection and the guards, preset to the service's (faster-whisper's) defaults.
    expect(page.get_by_label("Windows of speech (30 s each)")).to_have_value("1")
    page.get_by_label("Expected languages").fill("en, de")
    page.get_by_text("Guards against hallucination").click()
    ratio = page.get_by_label("Compression ratio above which a window is redone")
    expect(ratio).to_have_value("2.4")
    # The recording says the same sentences over and over: at 2.4 every window is redone by
    # sampling, whose segments vary from run to run (sometimes fewer than the five used below).
    ratio.fill("10")
    page.get_by_label("Skip silences longer than this around made-up text (s, 0: off)").fill("2")
    page.get_by_label("Upload a file").set_input_files(long_speech)
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_label("Upload progress")).to_have_attribute("value", "100")
    job_id = submitted_job(page)
    screenshot(page, "submit")

    # The table follows the job through /events: no reload from here on.
    page.get_by_role("link", name="Jobs", exact=True).click()
    expect(row(page, job_id)).to_be_visible()
    page.wait_for_function(
        """id => {
            const bar = document.querySelector(`tr[data-job-id="${id}"] progress`);
            return bar && bar.value > 0 && bar.value < 100;
        }""",
        arg=job_id,
        timeout=JOB_TIMEOUT_MS,
    )
    expect(row(page, job_id).locator(".badge")).to_have_text("running")
    screenshot(page, "jobs-running")
    expect(row(page, job_id).locator(".badge")).to_have_text("done", timeout=JOB_TIMEOUT_MS)
    expect(row(page, job_id).locator('td[data-label="Speed"]')).to_have_text(
        re.compile(r"^\d+\.\d" + "\N{MULTIPLICATION SIGN}$")
    )
    expect(row(page, job_id).locator('td[data-label="Source"]')).to_have_text("upload")

    row(page, job_id).get_by_role("link", name="long.wav").click()
    expect(page).to_have_url(re.compile(rf"#/job/{job_id}$"))
    expect(page.locator(".details")).to_contain_text(
        "at most 2 \N{MULTIPLICATION SIGN} 32 characters, 1\N{EN DASH}7 s on screen"
    )
    expect(page.locator(".details")).to_contain_text("museum, painting")
    expect(page.locator(".details")).to_contain_text(
        "en (detected, probability 1.00, among de, en)"
    )
    expect(page.locator(".details")).to_contain_text("hallucination_silence_threshold 2;")
    segments = page.locator(".segment")
    expect(segments.first).to_contain_text("museum")
    audio = page.locator("audio")
    expect(audio).to_have_attribute("src", f"/jobs/{job_id}/audio")
    page.wait_for_function("() => document.querySelector('audio')?.readyState >= 1")
    assert page.evaluate("document.querySelector('audio').duration") > 50

    # A click on a segment seeks there and marks it as the one playing.
    third = segments.nth(2)
    third.click()
    expect(third).to_have_attribute("aria-current", "true")
    start = float(third.get_attribute("data-start") or "nan")
    assert abs(page.evaluate("document.querySelector('audio').currentTime") - start) < 0.5
    # And the playhead moving on marks the segment under it.
    page.evaluate("document.querySelector('audio').pause()")
    fifth = segments.nth(4)
    midpoint = page.evaluate(
        "i => { const s = document.querySelectorAll('.segment')[i]; return Number(s.dataset.start) + 0.5 }",
        4,
    )
    page.evaluate("t => { document.querySelector('audio').currentTime = t }", midpoint)
    expect(fifth).to_have_attribute("aria-current", "true")
    expect(third).not_to_have_attribute("aria-current", "true")
    screenshot(page, "job")

    with page.expect_download() as caught:
        page.locator('.downloads button[data-format="srt"]').click()
    download = caught.value
    assert download.suggested_filename == "long.srt"
    srt = Path(download.path()).read_text()
    assert "-->" in srt
    assert max(len(line) for line in srt.splitlines() if "-->" not in line) <= 32

    page.get_by_role("link", name="Search").click()
    page.get_by_label("Find").fill("museum painting")
    page.get_by_label("Find").press("Enter")
    hit = page.locator(".hit").first
    expect(hit.locator("mark").first).to_have_text(re.compile("museum|painting", re.I))
    screenshot(page, "search")
    hit.click()
    expect(page).to_have_url(re.compile(rf"#/job/{job_id}\?t="))
    expect(page.locator('.segment[aria-current="true"]')).to_contain_text("museum")


def test_cancel_and_retry_from_the_table(
    page: Page, service: Service, folders: Path, long_speech: Path
) -> None:
    source = place(long_speech, folders / "library", "to-cancel.wav")
    page.goto(service.base_url + "/#/submit")
    page.get_by_label("A path on the server").fill(str(source))
    page.get_by_label("srt", exact=True).uncheck()
    page.get_by_role("button", name="Submit").click()
    job_id = submitted_job(page)
    assert service.job(job_id)["options"]["formats"] == ["txt", "vtt", "json", "tsv"]

    page.goto(service.base_url + "/#/jobs")
    expect(row(page, job_id).locator(".badge")).to_have_text(
        re.compile("queued|running"), timeout=JOB_TIMEOUT_MS
    )
    row(page, job_id).get_by_role("button", name=f"Cancel job {job_id}").click()
    expect(row(page, job_id).locator(".badge")).to_have_text("cancelled")
    assert service.job(job_id)["status"] == "cancelled"

    row(page, job_id).get_by_role("button", name=f"Retry job {job_id}").click()
    expect(row(page, job_id).locator(".badge")).to_have_text(re.compile("queued|running|done"))
    expect(row(page, job_id).locator(".badge")).to_have_text("done", timeout=JOB_TIMEOUT_MS)
    assert service.job(job_id)["status"] == "done"

    # The status filter shows only what it names, and pages through the rest.
    page.get_by_label("Status").select_option("cancelled")
    expect(page.locator(".empty")).to_be_visible()
    page.get_by_label("Status").select_option("done")
    expect(row(page, job_id)).to_be_visible()


def test_inbox_file_and_health_at_a_glance(page: Page, service: Service, folders: Path) -> None:
    dropped = place(FIXTURES / "speech_b.flac", folders / "inbox")
    job_id = service.wait_status(_job_for(service, dropped), "done")["id"]

    page.goto(service.base_url + "/#/jobs?source=inbox:inbox")
    expect(row(page, job_id).locator('td[data-label="Source"]')).to_have_text("inbox")
    expect(page.locator("#filter-source")).to_have_value("inbox:inbox")
    page.get_by_label("Source").select_option("")
    expect(page).to_have_url(re.compile(r"#/jobs$"))
    expect(row(page, job_id)).to_be_visible()
    screenshot(page, "jobs")

    page.get_by_role("link", name="Health").click()
    expect(page.locator("[data-ready]")).to_have_text("Ready.")
    inbox = page.locator('tr[data-inbox="inbox"]')
    expect(inbox.locator('td[data-label="Folder"]')).to_have_text(str(folders / "inbox"))
    expect(inbox.locator('td[data-label="Last scan"]')).not_to_have_text("never")
    # The registry's rows: the service's one worker, beating, from the database.
    worker = page.locator("tr[data-worker]")
    expect(worker).to_have_count(1)
    expect(worker.locator('td[data-label="State"]')).to_have_text(re.compile(r"^(idle|busy)$"))
    expect(worker.locator('td[data-label="Role"]')).to_have_text("service")
    glance = page.locator("#glance")
    expect(glance.locator('[data-figure="workers"]')).to_contain_text(
        re.compile(r"\d busy · \d idle")
    )
    expect(glance.locator('[data-figure="audio"]')).to_contain_text(" h")
    expect(glance.locator('[data-figure="speed"]')).to_contain_text(
        "\N{MULTIPLICATION SIGN} real time"
    )
    screenshot(page, "health")


def test_run_again_from_the_job_page(page: Page, service: Service, folders: Path) -> None:
    job_id = service.submit(place(FIXTURES / "speech_a.wav", folders / "library", "again.wav"))
    service.wait_status(job_id, "done")
    page.goto(f"{service.base_url}/#/job/{job_id}")
    page.get_by_role("button", name=f"Run job {job_id} again").click()
    expect(page).not_to_have_url(re.compile(rf"#/job/{job_id}$"))
    rerun_id = int(page.url.rsplit("/", 1)[1])
    assert rerun_id != job_id
    assert service.job(rerun_id)["options"] == service.job(job_id)["options"]
    expect(page.locator(".job-state .badge")).to_have_text("done", timeout=JOB_TIMEOUT_MS)


def test_a_job_names_a_model_from_the_form(page: Page, service: Service, folders: Path) -> None:
    source = place(FIXTURES / "speech_b.flac", folders / "library", "twin.flac")
    page.goto(service.base_url + "/#/submit")
    chooser = page.get_by_label("Model")
    expect(chooser).to_have_value("default")
    chooser.select_option("twin")
    page.get_by_label("A path on the server").fill(str(source))
    page.get_by_role("button", name="Submit").click()
    job_id = submitted_job(page)
    assert service.job(job_id)["options"]["model"] == "twin"
    page.locator(".outcome a").click()
    expect(page.locator(".job-state .badge")).to_have_text("done", timeout=JOB_TIMEOUT_MS)
    expect(page.get_by_text("twin", exact=True)).to_be_visible()
    transcript = service.client.get(f"/jobs/{job_id}/transcript", params={"format": "txt"})
    assert "quarterly" in transcript.text.lower()
    # A job from the form that leaves the model alone names none: the default's.
    page.goto(service.base_url + "/#/submit")
    page.get_by_label("A path on the server").fill(str(source))
    page.get_by_label("Hotwords").fill("finance")  # other options: a job of its own
    page.get_by_role("button", name="Submit").click()
    assert service.job(submitted_job(page))["options"]["model"] is None


def _job_for(service: Service, path: Path) -> int:
    from tests.helpers.waiting import wait_until

    def found() -> int | None:
        items = service.client.get("/jobs", params={"text": path.name}).json()["items"]
        return items[0]["id"] if items else None

    return wait_until(found, 60, f"a job for {path}")


def test_phone_width_and_keyboard(page: Page, service: Service, folders: Path) -> None:
    job_id = service.submit(place(FIXTURES / "speech_c.ogg", folders / "library"))
    service.wait_status(job_id, "done")
    page.set_viewport_size(PHONE)
    page.goto(service.base_url + "/#/jobs")
    expect(page.locator("tr[data-job-id]").first).to_be_visible()
    shown = {
        "jobs": "tr[data-job-id]",
        "search?q=elephant": ".hit",
        "submit": "#submit-language",
        "health": "tr[data-inbox]",
    }
    for view, selector in shown.items():
        page.goto(f"{service.base_url}/#/{view}")
        expect(page.locator(selector).first).to_be_visible()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"#/{view} is {overflow}px wider than a phone"
    page.goto(service.base_url + "/#/jobs")
    page.reload()
    expect(page.locator("tr[data-job-id]").first).to_be_visible()
    screenshot(page, "phone-jobs")

    # From the top of the page, the keyboard alone reaches a job and plays from a segment.
    page.keyboard.press("Tab")
    expect(page.locator(".skip")).to_be_focused()
    first_done = page.locator('tr[data-status="done"] td[data-label="File"] a').first
    for _ in range(60):
        if first_done.evaluate("link => link === document.activeElement"):
            break
        page.keyboard.press("Tab")
    expect(first_done).to_be_focused()
    page.keyboard.press("Enter")
    segment = page.locator(".segment").first
    expect(segment).to_be_visible()
    page.wait_for_function("() => document.querySelector('audio')?.readyState >= 1")
    page.evaluate("() => { const a = document.querySelector('audio'); a.currentTime = a.duration }")
    expect(segment).not_to_have_attribute("aria-current", "true")
    segment.focus()
    page.keyboard.press("Enter")
    expect(segment).to_have_attribute("aria-current", "true")
    assert page.evaluate("document.querySelector('audio').currentTime") < 1


def test_speakers_coloured_on_a_timeline_and_renamed(
    page: Page, service: Service, folders: Path
) -> None:
    source = place(FIXTURES / "conversation.flac", folders / "library", "meeting.flac")
    answer = service.client.post(
        "/transcribe", json={"path": str(source), "diarize": True, "formats": ["txt"]}
    )
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    service.wait_status(job_id, "done")
    page.goto(f"{service.base_url}/#/job/{job_id}")

    rows = page.locator(".timeline-row")
    expect(rows).to_have_count(3)
    expect(page.locator('.segment[data-speaker="Speaker 2"]').first).to_be_visible()
    shades = {
        page.locator(f'.segment[data-speaker="Speaker {n}"]').first.evaluate(
            "e => getComputedStyle(e).boxShadow"
        )
        for n in (1, 2, 3)
    }
    assert len(shades) == 3  # a colour of its own for each speaker

    # Someone else names Speaker 3 after this page loaded: saving here keeps their name.
    assert service.client.put(
        f"/jobs/{job_id}/speakers", json={"names": {"Speaker 3": "Lin"}}
    ).is_success
    page.get_by_label("Name for Speaker 1").fill("Ada")
    page.get_by_role("button", name="Save names").click()
    expect(page.locator('.timeline-row[data-speaker="Lin"]')).to_be_visible()
    expect(page.locator('.timeline-row[data-speaker="Ada"]')).to_be_visible()
    expect(page.locator('.segment[data-speaker="Ada"] .speaker').first).to_have_text("Ada")
    expect(page.locator('.segment[data-speaker="Speaker 1"]')).to_have_count(0)
    speakers = service.client.get(f"/jobs/{job_id}/speakers").json()["speakers"]
    assert speakers[0] == {"label": "Speaker 1", "name": "Ada"}

    # A name that would be a tag in WebVTT is refused, said on the page; nothing changes.
    page.get_by_label("Name for Speaker 2").fill("<b>Bo</b>")
    page.get_by_role("button", name="Save names").click()
    expect(page.locator(".speaker-names .form-message")).to_contain_text("cannot hold < or >")
    assert service.client.get(f"/jobs/{job_id}/speakers").json()["speakers"] == speakers

    # A turn on the timeline plays from its start: its segment is the current one.
    page.get_by_role("button", name=re.compile(r"^Ada from ")).last.click()
    expect(page.locator('.segment[aria-current="true"]')).to_have_attribute("data-speaker", "Ada")
