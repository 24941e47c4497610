"""Calls to a media server's own API: an item's file and subtitles (when its notification does not
say), and the refresh that makes a new subtitle appear without waiting for a scheduled scan.

- Jellyfin: GET /Items?ids=ID&fields=Path,MediaStreams, and POST /Items/ID/Refresh, with
  `Authorization: MediaBrowser Token="KEY"`.
- Emby: the same routes (its field names capitalised), with `X-Emby-Token: KEY`.
- Plex: GET /library/metadata/KEY (JSON with Accept: application/json; the file is
  Media[].Part[].file, subtitles are streams of streamType 3), and PUT
  /library/metadata/KEY/refresh, with `X-Plex-Token: TOKEN`.
Jellyfin's and Emby's /Items/ID answers 400 or 404 without a user; /Items?ids=ID does not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from whisper_transcriber.service.media_servers.notices import ServerKind
from whisper_transcriber.service.webhooks.http import Answer

USER_AGENT = "whisper-transcriber"
MAX_ITEM_BYTES = 4 * 2**20  # an item's details; a film's run to a few hundred KiB at most
EXCERPT_CHARS = 500


class MediaServerError(Exception):
    """The server could not say (unreachable, refused the key, no such item); the message is a
    sentence for the caller."""


@dataclass(frozen=True)
class Item:
    path: str | None
    subtitle_languages: tuple[str, ...]


@dataclass(frozen=True)
class MediaServer:
    kind: ServerKind
    url: str
    api_key: str | None
    timeout_s: float = 10.0

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.api_key is None:
            return headers
        if self.kind == "jellyfin":
            headers["Authorization"] = f'MediaBrowser Token="{self.api_key}"'
        elif self.kind == "emby":
            headers["X-Emby-Token"] = self.api_key
        else:
            headers["X-Plex-Token"] = self.api_key
        return headers

    def _client(self, timeout_s: float | None = None) -> httpx.Client:
        # The operator's own server: no proxy from the environment, no redirects elsewhere.
        return httpx.Client(
            base_url=self.url,
            headers=self._headers(),
            timeout=timeout_s or self.timeout_s,
            trust_env=False,
            follow_redirects=False,
        )

    def item(self, item_id: str) -> Item:
        """The item's file and its subtitles' languages. MediaServerError when it cannot say."""
        if self.api_key is None:
            raise MediaServerError(
                f"the notification does not name the file, and the {self.kind} server cannot be "
                "asked without its api_key setting"
            )
        if self.kind == "plex":
            path, params = f"/library/metadata/{_segment(item_id)}", {}
        else:
            names = ("ids", "fields") if self.kind == "jellyfin" else ("Ids", "Fields")
            path = "/Items"
            params = {names[0]: item_id, names[1]: "Path,MediaStreams", "recursive": "true",
                      "limit": "1"}  # fmt: skip
        try:
            with self._client() as client, client.stream("GET", path, params=params) as response:
                if response.status_code != 200:
                    raise MediaServerError(
                        f"the {self.kind} server answered HTTP {response.status_code} for "
                        f"item {item_id}"
                    )
                content = bytearray()
                for chunk in response.iter_bytes():
                    content += chunk
                    if len(content) > MAX_ITEM_BYTES:
                        raise MediaServerError(
                            f"the {self.kind} server's answer for item {item_id} is too large"
                        )
        except httpx.HTTPError as exc:
            raise MediaServerError(f"the {self.kind} server at {self.url}: {exc}") from exc
        try:
            data = json.loads(content)
        except ValueError as exc:
            raise MediaServerError(f"the {self.kind} server's answer is not JSON") from exc
        found = _plex_item(data, item_id) if self.kind == "plex" else _emby_item(data, item_id)
        if found is None:
            raise MediaServerError(f"the {self.kind} server has no item {item_id}")
        return found

    def refresh(self, media: Mapping[str, Any], timeout_s: float) -> Answer:
        """Ask the server to look at the item again (its new subtitle). Never raises."""
        if self.api_key is None:
            return Answer(None, "", f"the {self.kind} server has no api_key setting")
        try:
            with self._client(timeout_s) as client:
                item = _segment(str(media["item"]))
                if self.kind == "plex":  # what python-plexapi does after adding subtitle files
                    response = client.put(f"/library/metadata/{item}/refresh")
                else:
                    response = client.post(
                        f"/Items/{item}/Refresh",
                        params={
                            "Recursive": "false",
                            "MetadataRefreshMode": "Default",
                            "ImageRefreshMode": "Default",
                            "ReplaceAllMetadata": "false",
                            "ReplaceAllImages": "false",
                        },
                    )
        except httpx.HTTPError as exc:
            return Answer(None, "", f"cannot reach the {self.kind} server: {exc}")
        excerpt = response.text[:EXCERPT_CHARS]
        if 200 <= response.status_code < 300:
            return Answer(response.status_code, excerpt, None)
        return Answer(response.status_code, excerpt, f"HTTP {response.status_code}")


def _segment(value: str) -> str:
    """An id as one path segment, whatever it holds."""
    from urllib.parse import quote

    return quote(value, safe="")


def _same_id(given: Any, asked: str) -> bool:
    """Jellyfin writes its ids with or without dashes, in either case."""
    return str(given).replace("-", "").lower() == asked.replace("-", "").lower()


def _emby_item(data: Any, item_id: str) -> Item | None:
    """Jellyfin's and Emby's /Items answer: {"Items": [{"Path": ..., "MediaStreams": [...]}]};
    only the item asked for (a server that ignores an id it cannot read lists others)."""
    items = data.get("Items") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return None
    item = next((i for i in items if isinstance(i, dict) and _same_id(i.get("Id"), item_id)), None)
    if item is None:
        return None
    streams = item.get("MediaStreams") or []
    languages = tuple(
        str(s.get("Language") or "").lower()
        for s in streams
        if isinstance(s, dict) and s.get("Type") == "Subtitle"
    )
    path = item.get("Path")
    return Item(path if isinstance(path, str) and path else None, languages)


def _plex_item(data: Any, item_id: str) -> Item | None:
    """Plex's /library/metadata/KEY: MediaContainer.Metadata[0].Media[].Part[] with file and
    Stream[] (streamType 3: subtitles, languageCode)."""
    container = data.get("MediaContainer") if isinstance(data, dict) else None
    metadata = container.get("Metadata") if isinstance(container, dict) else None
    if not isinstance(metadata, list) or not metadata or not isinstance(metadata[0], dict):
        return None
    item = metadata[0]
    if "ratingKey" in item and not _same_id(item["ratingKey"], item_id):
        return None
    path, languages = None, []
    for media in item.get("Media") or []:
        for part in (media.get("Part") or []) if isinstance(media, dict) else []:
            if not isinstance(part, dict):
                continue
            if path is None and isinstance(part.get("file"), str):
                path = part["file"]
            for stream in part.get("Stream") or []:
                if isinstance(stream, dict) and stream.get("streamType") == 3:
                    languages.append(str(stream.get("languageCode") or "").lower())
    return Item(path, tuple(languages))
