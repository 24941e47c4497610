"""Jellyfin, Plex and Emby call a real `serve` (the real model) with bodies shaped as they send
them; the item's file, found through the server's path mapping (and, for Plex, through the
server's own API, a fake of it), becomes its inbox's job; its subtitle appears beside the film
under the media-library name, and the fake server is asked to refresh that item, once."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from pathlib import Path

import httpx

from tests.helpers.fake_media_server import (
    FakeItem,
    emby_notification,
    jellyfin_notification,
    media_server,
    plex_payload,
)
from tests.helpers.media import make_video
from tests.helpers.service import Service, running_service, service_env
from tests.helpers.waiting import wait_until

KEY = "0123456789abcdef0123456789abcdef"
TOKEN = "notify-me-7f3a9c0b21de"
THEIRS = "/data/movies"  # where the media server sees the library


def _library(tmp_path: Path) -> tuple[Path, Path]:
    """A movie library (an inbox with the media-library rules) and a film in it."""
    library = tmp_path / "movies"
    film = make_video(library / "Film (2020)" / "Film (2020).mkv")
    return library, film


def _serve(
    tmp_path: Path, database_url: str, library: Path, servers: dict[str, object]
) -> AbstractContextManager[Service]:
    env = service_env(MEDIA_SERVERS=json.dumps(servers))
    inbox = f"{library}?media_library=true&language=en"
    return running_service("--database-url", database_url, "--inbox", inbox, cwd=tmp_path, env=env)


def _server(kind: str, url: str, library: Path, **more: object) -> dict[str, object]:
    return {"kind": kind, "url": url, "api_key": KEY, "token": TOKEN,
            "path_map": {THEIRS: str(library)}, **more}  # fmt: skip


def _sidecar(film: Path) -> Path:
    return film.with_name(f"{film.stem}.en.srt")


def _done(service: Service, answer: httpx.Response) -> dict[str, object]:
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["job"]["id"]
    return service.wait_status(job_id, "done")


def test_jellyfin_item_added_becomes_a_subtitle_and_a_refresh(
    database_url: str, tmp_path: Path
) -> None:
    library, film = _library(tmp_path)
    theirs = f"{THEIRS}/Film (2020)/Film (2020).mkv"
    with media_server("jellyfin", KEY) as jellyfin:
        servers = {"jf": _server("jellyfin", jellyfin.url, library)}
        with _serve(tmp_path, database_url, library, servers) as service:
            notification = json.dumps(
                jellyfin_notification("ItemAdded", "5f1c0a9e7b3d4c2a8e6f1d0b9a8c7e6d", theirs)
            )
            url = f"/media-servers/jf?token={TOKEN}"
            plain = {"content-type": "text/plain"}  # the plugin's own, unless told otherwise
            job = _done(service, service.client.post(url, content=notification, headers=plain))
            assert job["source_path"] == str(film) and job["inbox"] == "movies"
            assert "Film (2020).en.srt" in " ".join(job["outputs"])
            wait_until(lambda: len(jellyfin.refreshes) == 1, 30, "the refresh")
            again = service.client.post(url, content=notification, headers=plain)  # twice
            assert again.status_code == 200 and again.json()["job"]["id"] == job["id"]
            deliveries = service.client.get("/webhooks/deliveries").json()
            log = service.log.read_text()
    assert "/media-servers/jf?token=***" in log and TOKEN not in log  # kept out of the log
    assert "museum" in _sidecar(film).read_text().lower()
    ((item, query),) = jellyfin.refreshes
    assert item == "5f1c0a9e7b3d4c2a8e6f1d0b9a8c7e6d"
    assert query["ReplaceAllMetadata"] == ["false"]
    assert jellyfin.lookups == [] and jellyfin.refused == []  # the body named the file
    assert [(d["subscription"], d["status"]) for d in deliveries] == [("media:jf", "delivered")]


def test_plex_library_new_is_looked_up_and_refreshed(database_url: str, tmp_path: Path) -> None:
    library, film = _library(tmp_path)
    with media_server("plex", KEY) as plex:
        plex.items["4711"] = FakeItem(f"{THEIRS}/Film (2020)/Film (2020).mkv")
        servers = {"plex": _server("plex", plex.url, library)}
        with _serve(tmp_path, database_url, library, servers) as service:
            payload = json.dumps(plex_payload("library.new", "4711", section=3))
            answer = service.client.post(
                f"/media-servers/plex?token={TOKEN}",
                files={"thumb": ("thumb.jpg", b"\xff\xd8\xff\xe0", "image/jpeg")},
                data={"payload": payload},
            )
            _done(service, answer)
            wait_until(lambda: len(plex.refreshes) == 1, 30, "the refresh")
            played = service.client.post(
                f"/media-servers/plex?token={TOKEN}",
                data={"payload": json.dumps(plex_payload("media.play", "4711", section=3))},
            )
    assert played.status_code == 200  # playback is not asked for: nothing to do
    assert _sidecar(film).exists()
    assert plex.lookups == ["4711"]
    assert [item for item, _query in plex.refreshes] == ["4711"]


def test_emby_playback_transcribes_only_what_lacks_a_subtitle(
    database_url: str, tmp_path: Path
) -> None:
    library, film = _library(tmp_path)
    other = make_video(library / "Other (2021)" / "Other (2021).mkv")
    with media_server("emby", KEY) as emby:
        emby.items["101"] = FakeItem(f"{THEIRS}/Other (2021)/Other (2021).mkv", ("eng",))
        emby.items["102"] = FakeItem(f"{THEIRS}/Film (2020)/Film (2020).mkv", ("ger",))
        servers = {"emby": _server("emby", emby.url, library, playback=True, languages=["en"])}
        with _serve(tmp_path, database_url, library, servers) as service:
            url = f"/media-servers/emby?token={TOKEN}"
            has_english = emby_notification(
                "playback.start", "101", f"{THEIRS}/Other (2021)/Other (2021).mkv"
            )
            answer = service.client.post(url, json=has_english)  # Emby 4.9: JSON
            assert answer.status_code == 200, answer.text
            assert "has a subtitle in en" in answer.json()["detail"]
            only_german = emby_notification(
                "playback.start", "102", f"{THEIRS}/Film (2020)/Film (2020).mkv"
            )
            as_form = {"data": json.dumps(only_german)}  # Emby 4.8: a form
            _done(service, service.client.post(url, data=as_form, files={"x": ("", b"")}))
            wait_until(lambda: len(emby.refreshes) == 1, 30, "the refresh")
    assert _sidecar(film).exists() and not _sidecar(other).exists()
    assert emby.refreshes[0][0] == "102"
    assert emby.lookups == ["101", "102"]  # the notifications list no streams: asked


def test_notifications_are_held_to_the_token_the_mapping_and_the_inboxes(
    database_url: str, tmp_path: Path
) -> None:
    library, _film = _library(tmp_path)
    outside = make_video(tmp_path / "elsewhere" / "Secret.mkv")
    with media_server("jellyfin", KEY) as jellyfin:
        servers = {
            "jf": _server("jellyfin", jellyfin.url, library),
            "wide": _server("jellyfin", jellyfin.url, library, path_map={"/": "/"}),
        }
        env_key = {"API_KEY": "service-key"}
        env = service_env(MEDIA_SERVERS=json.dumps(servers), **env_key)
        inbox = f"{library}?media_library=true"
        with running_service(
            "--database-url", database_url, "--inbox", inbox, cwd=tmp_path, env=env
        ) as service:

            def send(name: str, path: str, token: str | None = TOKEN) -> httpx.Response:
                query = f"?token={token}" if token is not None else ""
                body = jellyfin_notification("ItemAdded", "1", path)
                return service.client.post(f"/media-servers/{name}{query}", json=body)

            assert (
                send("jf", f"{THEIRS}/Film (2020)/Film (2020).mkv", token="wrong").status_code
                == 401
            )
            assert (
                send("jf", f"{THEIRS}/Film (2020)/Film (2020).mkv", token=None).status_code == 401
            )
            assert send("nobody", f"{THEIRS}/x.mkv").status_code == 401  # names not guessable
            keyed = {"X-API-Key": "service-key"}
            body = jellyfin_notification("ItemAdded", "1", f"{THEIRS}/x.mkv")
            unknown = service.client.post("/media-servers/nobody", json=body, headers=keyed)
            assert unknown.status_code == 404
            ghost = send("jf", f"{THEIRS}/Ghost (2020)/Ghost (2020).mkv")
            assert ghost.status_code == 422 and "no file" in ghost.json()["detail"]
            folder = send("jf", f"{THEIRS}/Film (2020)")
            assert folder.status_code == 422
            nul = send("jf", f"{THEIRS}/Film (2020)/Film\x00.mkv")
            assert nul.status_code == 400
            forged = jellyfin_notification("ItemAdded", "x\n2099 ERROR forged", f"{THEIRS}/a.mkv")
            assert (
                service.client.post(f"/media-servers/jf?token={TOKEN}", json=forged).status_code
                == 400
            )
            deep = service.client.post(f"/media-servers/jf?token={TOKEN}", content=b"[" * 30000)
            assert deep.status_code == 400
            escaped = service.client.post(
                f"/media-servers/jf?%74oken={TOKEN}", json=jellyfin_notification("Other", "1", None)
            )
            assert escaped.status_code == 200  # "%74oken" is token: the log must hide it too
            escape = send("jf", f"{THEIRS}/../../../etc/passwd")
            assert escape.status_code == 422 and "path_map" in escape.json()["detail"]
            dots = send("jf", f"{THEIRS}/Film (2020)/../../elsewhere/Secret.mkv")
            assert dots.status_code == 422
            beyond = send("wide", str(outside))  # mapped, but in no inbox
            assert beyond.status_code == 403 and "no inbox" in beyond.json()["detail"]
            not_json = service.client.post(f"/media-servers/jf?token={TOKEN}", content=b"{nope")
            assert not_json.status_code == 400
            listed = service.client.get("/jobs", headers={"X-API-Key": "service-key"})
            assert listed.json()["items"] == []  # nothing was queued
            log = service.log.read_text()
    assert TOKEN not in log
    assert jellyfin.lookups == [] and jellyfin.refreshes == []
