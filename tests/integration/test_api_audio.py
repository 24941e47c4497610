"""A job's audio for the browser: GET /jobs/{id}/audio with Range requests on real files and a
real database, and the signed links that let an `<audio src>` in without the API key."""

from __future__ import annotations

import shutil
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.helpers.apps import app_for
from tests.helpers.media import FIXTURES
from whisper_transcriber.api.signed_links import (
    AUDIO_LINK_LIFETIME_S,
    audio_link_is_valid,
    audio_signature,
    is_signed_audio_request,
    signed_audio_link,
)
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.values import JobOptions, JobRecord

KEY = "s3cret key"
NOW = 1_800_000_000.0


def queue(store: JobStore, folder: Path, fixture: str, name: str) -> JobRecord:
    path = Path(shutil.copy(FIXTURES / fixture, folder / name))
    job, _ = store.enqueue(path, JobOptions(formats=("txt",)), "api")
    return job


# -- signing, as pure functions -------------------------------------------------------------


def test_a_signed_link_holds_for_its_job_until_it_expires() -> None:
    link = signed_audio_link(KEY, 7, NOW)
    url = urlsplit(link.url)
    assert url.path == "/jobs/7/audio"
    query = {name: value for name, [value] in parse_qs(url.query).items()}
    expires = int(query["expires"])
    assert expires == int(NOW) + AUDIO_LINK_LIFETIME_S == 1_800_000_000 + 6 * 3600
    assert link.expires_at is not None and link.expires_at.timestamp() == expires
    signature = query["signature"]
    assert signature == audio_signature(KEY, 7, expires)
    assert len(signature) == 64 and int(signature, 16) >= 0  # SHA-256, hex

    assert audio_link_is_valid(KEY, 7, str(expires), signature, NOW)
    assert audio_link_is_valid(KEY, 7, str(expires), signature, expires - 1)
    assert not audio_link_is_valid(KEY, 7, str(expires), signature, expires)  # expired
    assert not audio_link_is_valid(KEY, 8, str(expires), signature, NOW)  # another job
    assert not audio_link_is_valid("another key", 7, str(expires), signature, NOW)
    later = str(expires + 3600)  # a longer life, by hand
    assert not audio_link_is_valid(KEY, 7, later, signature, NOW)
    tampered = ("0" if signature[0] != "0" else "1") + signature[1:]
    assert not audio_link_is_valid(KEY, 7, str(expires), tampered, NOW)
    # Full-width digits pass str.isdigit; a time is ASCII digits only.
    # A huge digit string is refused before int() (which raises past 4300 digits).
    for junk in ("", "-5", "1e9", "\uff11\uff12", "12 ", "9" * 5000):
        assert not audio_link_is_valid(KEY, 7, junk, signature, NOW)
    assert not audio_link_is_valid(KEY, 7, str(expires), "ü" + signature[1:], NOW)


def test_without_a_key_the_link_is_the_plain_url() -> None:
    link = signed_audio_link(None, 7, NOW)
    assert (link.url, link.expires_at) == ("/jobs/7/audio", None)


def test_only_the_exact_audio_path_accepts_a_signature() -> None:
    link = signed_audio_link(KEY, 7, NOW)
    path, query = link.url.split("?")
    assert is_signed_audio_request(KEY, path, query.encode(), NOW)
    for other in ("/jobs/7/audio/", "/jobs/7/transcript", "/jobs/7", "/x/jobs/7/audio"):
        assert not is_signed_audio_request(KEY, other, query.encode(), NOW), other
    assert not is_signed_audio_request(KEY, path, b"", NOW)
    twice = f"{query}&signature={'0' * 64}".encode()  # which one counts? neither
    assert not is_signed_audio_request(KEY, path, twice, NOW)
    huge_id = "/jobs/" + "7" * 5000 + "/audio"
    assert not is_signed_audio_request(KEY, huge_id, query.encode(), NOW)


# -- the endpoints --------------------------------------------------------------------------


def test_audio_is_served_whole_and_by_range(store: JobStore, tmp_path: Path) -> None:
    wav = queue(store, tmp_path, "speech_a.wav", "talk.wav")
    flac = queue(store, tmp_path, "speech_b.flac", "talk.flac")
    ogg = queue(store, tmp_path, "speech_c.ogg", "talk.ogg")
    data = (FIXTURES / "speech_a.wav").read_bytes()
    with app_for(store, tmp_path) as client:
        whole = client.get(f"/jobs/{wav.id}/audio")
        assert whole.status_code == 200
        assert whole.content == data
        assert whole.headers["content-type"] == "audio/wav"
        assert whole.headers["accept-ranges"] == "bytes"
        assert whole.headers["content-disposition"] == 'inline; filename="talk.wav"'
        part = client.get(f"/jobs/{wav.id}/audio", headers={"range": "bytes=100-1099"})
        assert part.status_code == 206
        assert part.content == data[100:1100]
        assert part.headers["content-range"] == f"bytes 100-1099/{len(data)}"
        tail = client.get(f"/jobs/{wav.id}/audio", headers={"range": "bytes=-10"})
        assert (tail.status_code, tail.content) == (206, data[-10:])
        beyond = client.get(f"/jobs/{wav.id}/audio", headers={"range": f"bytes={len(data)}-"})
        assert beyond.status_code == 416
        kinds = {
            job.id: client.get(f"/jobs/{job.id}/audio").headers["content-type"]
            for job in (flac, ogg)
        }
        assert kinds == {flac.id: "audio/flac", ogg.id: "audio/ogg"}


def test_what_is_not_media_is_served_as_bytes(store: JobStore, tmp_path: Path) -> None:
    page = tmp_path / "page.html"  # an upload may be named anything
    page.write_text("<script>alert(1)</script>")
    job, _ = store.enqueue(page, JobOptions(), "upload")
    with app_for(store, tmp_path) as client:
        response = client.get(f"/jobs/{job.id}/audio")
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_moved_original_is_served_from_where_it_went(store: JobStore, tmp_path: Path) -> None:
    job = queue(store, tmp_path, "speech_a.wav", "talk.wav")
    done = tmp_path / "done"
    done.mkdir()
    moved = Path(shutil.move(job.source_path, done / "talk.wav"))
    store.original_moved(job.id, moved)
    with app_for(store, tmp_path) as client:
        response = client.get(f"/jobs/{job.id}/audio")
    assert response.status_code == 200
    assert response.content == moved.read_bytes()


def test_audio_that_is_gone_is_a_readable_404(store: JobStore, tmp_path: Path) -> None:
    job = queue(store, tmp_path, "speech_a.wav", "talk.wav")
    Path(job.source_path).unlink()
    with app_for(store, tmp_path) as client:
        gone = client.get(f"/jobs/{job.id}/audio")
        unknown = client.get("/jobs/424242/audio")
        no_link = client.get("/jobs/424242/audio-link")
    assert (gone.status_code, gone.json()) == (
        404,
        {"detail": f"the source file is no longer at {job.source_path}"},
    )
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "job 424242 does not exist"})
    assert (no_link.status_code, no_link.json()) == (404, {"detail": "job 424242 does not exist"})


def test_without_a_key_the_link_is_plain(store: JobStore, tmp_path: Path) -> None:
    job = queue(store, tmp_path, "speech_a.wav", "talk.wav")
    with app_for(store, tmp_path) as client:
        link = client.get(f"/jobs/{job.id}/audio-link")
        assert link.json() == {"url": f"/jobs/{job.id}/audio", "expires_at": None}
        assert client.get(link.json()["url"]).status_code == 200


def test_with_a_key_a_signed_link_opens_the_audio_and_nothing_else(
    store: JobStore, tmp_path: Path
) -> None:
    job = queue(store, tmp_path, "speech_a.wav", "talk.wav")
    other = queue(store, tmp_path, "speech_c.ogg", "other.ogg")
    data = (FIXTURES / "speech_a.wav").read_bytes()
    with app_for(store, tmp_path, api_key=KEY) as client:
        assert client.get(f"/jobs/{job.id}/audio").status_code == 401
        assert client.get(f"/jobs/{job.id}/audio-link").status_code == 401
        before = time.time()
        answer = client.get(f"/jobs/{job.id}/audio-link", headers={"x-api-key": KEY}).json()
        url = answer["url"]
        expires = int(parse_qs(urlsplit(url).query)["expires"][0])
        assert before + AUDIO_LINK_LIFETIME_S - 1 <= expires <= time.time() + AUDIO_LINK_LIFETIME_S
        assert datetime.fromisoformat(answer["expires_at"]).timestamp() == expires

        # What an <audio src> does: no key, the whole file, then ranges as it seeks.
        whole = client.get(url)
        assert (whole.status_code, whole.content) == (200, data)
        part = client.get(url, headers={"range": "bytes=44-143"})
        assert (part.status_code, part.content) == (206, data[44:144])

        query = urlsplit(url).query
        assert client.get(f"/jobs/{other.id}/audio?{query}").status_code == 401  # another job
        assert client.get(f"/jobs/{job.id}/transcript?{query}").status_code == 401
        assert client.get(f"/jobs/{job.id}?{query}").status_code == 401
        assert client.delete(f"/jobs/{job.id}/audio?{query}").status_code == 401
        past = int(time.time()) - 1
        expired = f"expires={past}&signature={audio_signature(KEY, job.id, past)}"
        assert client.get(f"/jobs/{job.id}/audio?{expired}").status_code == 401
        wrong_key = f"expires={expires}&signature={audio_signature('nope', job.id, expires)}"
        assert client.get(f"/jobs/{job.id}/audio?{wrong_key}").status_code == 401
        # The key still works on its own.
        assert client.get(f"/jobs/{job.id}/audio", headers={"x-api-key": KEY}).status_code == 200


@pytest.mark.parametrize("job_id", ["0", "-1", "x", str(2**63)])
def test_job_ids_out_of_range_are_refused(store: JobStore, tmp_path: Path, job_id: str) -> None:
    with app_for(store, tmp_path) as client:
        assert client.get(f"/jobs/{job_id}/audio").status_code == 422
        assert client.get(f"/jobs/{job_id}/audio-link").status_code == 422
