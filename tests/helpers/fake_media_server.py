"""A stand-in for a Jellyfin, Emby or Plex server's API, on a real socket: it knows a few items
(their file and subtitle languages), answers the lookups the service makes for an item the
notification does not describe, records the refreshes it is asked for, and checks the key each
server expects where it expects it. Notification bodies shaped as each server sends them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

Kind = Literal["jellyfin", "emby", "plex"]


@dataclass
class FakeItem:
    path: str
    subtitles: tuple[str, ...] = ()  # languages, as the server codes them (eng, ger)
    section: str = "1"


@dataclass
class FakeMediaServer:
    kind: Kind
    key: str
    items: dict[str, FakeItem] = field(default_factory=dict)
    refreshes: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # requests with a wrong or no key
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def authorised(self, headers: dict[str, str]) -> bool:
        if self.kind == "jellyfin":
            return headers.get("authorization") == f'MediaBrowser Token="{self.key}"'
        if self.kind == "emby":
            return headers.get("x-emby-token") == self.key
        return headers.get("x-plex-token") == self.key

    def answer(self, method: str, target: str, headers: dict[str, str]) -> tuple[int, Any]:
        parts = urlsplit(target)
        query = parse_qs(parts.query)
        if not self.authorised(headers):
            self.refused.append(target)
            return 401, {"error": "unauthorised"}
        if self.kind == "plex":
            return self._plex(method, parts.path, query)
        return self._emby_like(method, parts.path, query)

    def _emby_like(self, method: str, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if method == "GET" and path == "/Items":
            wanted = (query.get("ids") or query.get("Ids") or [""])[0]
            self.lookups.append(wanted)
            item = self.items.get(wanted)
            if item is None:
                return 200, {"Items": [], "TotalRecordCount": 0}
            streams = [{"Type": "Video", "Codec": "h264", "Index": 0}] + [
                {"Type": "Subtitle", "Language": language, "Codec": "subrip", "Index": n + 1}
                for n, language in enumerate(item.subtitles)
            ]
            found = {"Id": wanted, "Name": "Film", "Path": item.path, "MediaStreams": streams}
            return 200, {"Items": [found], "TotalRecordCount": 1}
        if method == "POST" and path.startswith("/Items/") and path.endswith("/Refresh"):
            self.refreshes.append((path.split("/")[2], query))
            return 204, None
        return 404, {"error": f"no route {method} {path}"}

    def _plex(self, method: str, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if method == "GET" and path.startswith("/library/metadata/"):
            key = path.rsplit("/", 1)[1]
            self.lookups.append(key)
            item = self.items.get(key)
            if item is None:
                return 404, None
            streams = [{"id": 1, "streamType": 1, "codec": "h264"}] + [
                {"id": n + 2, "streamType": 3, "codec": "srt", "languageCode": language}
                for n, language in enumerate(item.subtitles)
            ]
            part = {
                "id": 9,
                "key": "/library/parts/9/file.mkv",
                "file": item.path,
                "Stream": streams,
            }
            metadata = {
                "ratingKey": key,
                "key": f"/library/metadata/{key}",
                "type": "movie",
                "title": "Film",
                "librarySectionID": int(item.section),
                "Media": [{"id": 8, "Part": [part]}],
            }
            return 200, {"MediaContainer": {"size": 1, "Metadata": [metadata]}}
        if method == "PUT" and path.startswith("/library/metadata/") and path.endswith("/refresh"):
            self.refreshes.append((path.split("/")[3], query))
            return 200, None
        return 404, None


@contextmanager
def media_server(kind: Kind, key: str) -> Iterator[FakeMediaServer]:
    fake = FakeMediaServer(kind, key)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            if length:
                self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            with lock:
                status, body = fake.answer(self.command, self.path, headers)
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = _serve
        do_POST = _serve
        do_PUT = _serve

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


# -- notifications as the servers send them ---------------------------------------------------


def jellyfin_notification(
    event: str, item_id: str, path: str | None, subtitles: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The webhook plugin's Generic destination with "Send All Properties": the plugin's data
    object (DataObjectHelpers: GetBaseDataObject, AddBaseItemData, and for playback the
    session's and the progress's fields), a flat JSON object."""
    body: dict[str, Any] = {
        "ServerId": "a3f5c0e1b2d84f6e9c7a1b2c3d4e5f60",
        "ServerName": "jellyfin",
        "ServerVersion": "10.10.7",
        "ServerUrl": "http://jellyfin:8096",
        "NotificationType": event,
        "Timestamp": "2026-12-08T12:00:00.0000000+01:00",
        "UtcTimestamp": "2026-12-08T11:00:00.0000000Z",
        "Name": "Film",
        "Overview": "",
        "Tagline": "",
        "ItemId": item_id,
        "ItemType": "Movie",
        "RunTimeTicks": 30000000,
        "RunTime": "00:00:03",
        "Year": 2020,
        "Provider_tmdb": "12345",
        "Video_0_Title": "1080p H264 SDR",
        "Video_0_Type": "Video",
        "Video_0_Codec": "h264",
        "Audio_0_Title": "English - AAC - Mono",
        "Audio_0_Type": "Audio",
        "Audio_0_Language": "eng",
        "Audio_0_Codec": "aac",
    }
    if path is not None:
        body["Path"] = path
    for n, language in enumerate(subtitles):
        body |= {
            f"Subtitle_{n}_Title": language,
            f"Subtitle_{n}_Type": "Subtitle",
            f"Subtitle_{n}_Language": language,
            f"Subtitle_{n}_Codec": "subrip",
            f"Subtitle_{n}_Default": False,
            f"Subtitle_{n}_Forced": False,
            f"Subtitle_{n}_External": True,
        }
    if event == "PlaybackStart":
        body |= {
            "PlaybackPositionTicks": 0,
            "PlaybackPosition": "00:00:00",
            "MediaSourceId": item_id,
            "IsPaused": False,
            "IsAutomated": False,
            "DeviceId": "TW96aWxsYS81LjA",
            "DeviceName": "Firefox",
            "ClientName": "Jellyfin Web",
            "NotificationUsername": "ada",
            "UserId": "6f2a2b3c4d5e6f708192a3b4c5d6e7f8",
        }
    return body


def plex_payload(event: str, rating_key: str, section: int = 1) -> dict[str, Any]:
    """The JSON of the `payload` field of Plex's multipart webhook (Plex's support article
    "Webhooks"): no file path, the item's ratingKey and its library section."""
    return {
        "event": event,
        "user": True,
        "owner": True,
        "Account": {"id": 1, "thumb": "https://plex.tv/users/1/avatar", "title": "ada"},
        "Server": {"title": "plex", "uuid": "54664a3d8acc39983675640ec9ce00b70af9cc36"},
        "Player": {
            "local": True,
            "publicAddress": "203.0.113.7",
            "title": "Plex Web",
            "uuid": "r6yfkdnfggbh2bdnvkffwbms",
        },
        "Metadata": {
            "librarySectionType": "movie",
            "ratingKey": rating_key,
            "key": f"/library/metadata/{rating_key}",
            "guid": "plex://movie/5d776b59ad5437001f79c6f8",
            "librarySectionTitle": "Movies",
            "librarySectionID": section,
            "librarySectionKey": f"/library/sections/{section}",
            "type": "movie",
            "title": "Film",
            "year": 2020,
            "addedAt": 1765191600,
            "updatedAt": 1765191600,
        },
    }


def emby_notification(event: str, item_id: str, path: str) -> dict[str, Any]:
    """Emby's webhooks (4.8: a multipart form's `data` field; 4.9 may send it as the body):
    Title, Date, Event, Severity, Server, Item (its Id, Path and Type, no streams), and User,
    Session and PlaybackInfo for playback."""
    body: dict[str, Any] = {
        "Title": "Film (2020) added to emby",
        "Date": "2026-12-08T11:00:00.0000000Z",
        "Event": event,
        "Severity": "Info",
        "Server": {"Name": "emby", "Id": "4cd2fbd4c7b54a0a8b6b1e1c2d3e4f50", "Version": "4.8.11.0"},
        "Item": {
            "Name": "Film",
            "ServerId": "4cd2fbd4c7b54a0a8b6b1e1c2d3e4f50",
            "Id": item_id,
            "Path": path,
            "FileName": path.rsplit("/", 1)[-1],
            "Container": "mkv",
            "Type": "Movie",
            "IsFolder": False,
            "MediaType": "Video",
            "ProductionYear": 2020,
            "ParentId": "7",
        },
    }
    if event == "playback.start":
        body["User"] = {"Name": "ada", "Id": "0f1e2d3c4b5a69788796a5b4c3d2e1f0"}
        body["Session"] = {"Id": "s1", "DeviceName": "Firefox", "Client": "Emby Web"}
        body["PlaybackInfo"] = {"PositionTicks": 0, "PlaySessionId": "p1"}
    return body
