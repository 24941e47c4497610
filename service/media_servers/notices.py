"""What a media server's notification says, read from the body each server sends:

- Jellyfin: the webhook plugin's Generic destination with "Send All Properties", a flat JSON object
  (jellyfin-plugin-webhook's DataObjectHelpers): NotificationType "ItemAdded" or "PlaybackStart",
  ItemId, ItemType, Path (plugin 13 and later), Subtitle_N_Language for each subtitle stream.
- Plex: a multipart form whose "payload" field is JSON: event "library.new" or "media.play",
  Metadata.ratingKey, Metadata.type, Metadata.librarySectionID; never a file's path.
- Emby: JSON (or a multipart form whose "data" field is JSON): Event "library.new" or
  "playback.start", Item.Id, Item.Type, Item.Path, Item.MediaStreams.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

EventKind = Literal["added", "playback", "other"]
ServerKind = Literal["jellyfin", "plex", "emby"]

# Items with a file of their own to transcribe; a series, season or album is not one.
PLAYABLE_TYPES = frozenset({"movie", "episode", "video", "musicvideo", "audio", "track", "clip"})


_JELLYFIN_EVENTS: dict[str, EventKind] = {"ItemAdded": "added", "PlaybackStart": "playback"}
_PLEX_EVENTS: dict[str, EventKind] = {"library.new": "added", "media.play": "playback"}
_EMBY_EVENTS: dict[str, EventKind] = {"library.new": "added", "playback.start": "playback"}


_SUBTITLE_KEY = re.compile(r"^Subtitle_(\d{1,3})_")
# What the servers' item ids look like: Jellyfin's 32 hex digits (with or without dashes), Plex's
# and Emby's numbers. Anything else is refused: an id goes into URLs and log lines.
_ITEM_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


class NoticeError(ValueError):
    """A body that is not such a server's notification (a 400, saying what is missing)."""


@dataclass(frozen=True)
class Notice:
    event: EventKind
    what: str  # the server's own name for the event, for messages
    item_id: str = ""
    item_type: str = ""
    path: str | None = None  # the server's path of the item's file, when the body has it
    # The languages of the subtitles the item has, when the body says (None: ask the server).
    subtitle_languages: tuple[str, ...] | None = None

    @property
    def playable(self) -> bool:
        return self.item_type.lower() in PLAYABLE_TYPES


def notice_of(kind: ServerKind, payload: Mapping[str, Any]) -> Notice:
    if kind == "jellyfin":
        return _jellyfin(payload)
    if kind == "plex":
        return _plex(payload)
    return _emby(payload)


def _jellyfin(payload: Mapping[str, Any]) -> Notice:
    what = _text(payload, "NotificationType")
    event = _JELLYFIN_EVENTS.get(what, "other")
    if event == "other":
        return Notice("other", what)
    # Each subtitle stream has Subtitle_N_* keys; one without a language is still a subtitle.
    streams = sorted({int(m[1]) for key in payload if (m := _SUBTITLE_KEY.match(key))})
    subtitles = tuple(str(payload.get(f"Subtitle_{n}_Language") or "").lower() for n in streams)
    has_streams = any(key.startswith(("Video_", "Audio_", "Subtitle_")) for key in payload)
    return Notice(
        event,
        what,
        item_id=_item_id(payload, "ItemId"),
        item_type=_text(payload, "ItemType"),
        path=_text(payload, "Path") or None,
        subtitle_languages=subtitles if has_streams else None,
    )


def _plex(payload: Mapping[str, Any]) -> Notice:
    what = _text(payload, "event")
    event = _PLEX_EVENTS.get(what, "other")
    if event == "other":
        return Notice("other", what)
    metadata = payload.get("Metadata")
    if not isinstance(metadata, Mapping):
        raise NoticeError(f"a Plex {what} notification without Metadata")
    return Notice(
        event,
        what,
        item_id=_item_id(metadata, "ratingKey"),
        item_type=_text(metadata, "type"),
    )


def _emby(payload: Mapping[str, Any]) -> Notice:
    what = _text(payload, "Event")
    event = _EMBY_EVENTS.get(what, "other")
    if event == "other":
        return Notice("other", what)
    item = payload.get("Item")
    if not isinstance(item, Mapping):
        raise NoticeError(f"an Emby {what} notification without Item")
    streams = item.get("MediaStreams")
    subtitles = (
        tuple(
            str(s.get("Language") or "").lower()
            for s in streams
            if isinstance(s, Mapping) and s.get("Type") == "Subtitle"
        )
        if isinstance(streams, list)
        else None
    )
    return Notice(
        event,
        what,
        item_id=_item_id(item, "Id"),
        item_type=_text(item, "Type"),
        path=_text(item, "Path") or None,
        subtitle_languages=subtitles,
    )


def _item_id(payload: Mapping[str, Any], key: str) -> str:
    item_id = _text(payload, key, required=True)
    if not _ITEM_ID.match(item_id):
        raise NoticeError(f"the notification's {key} is not an item id")
    return item_id


def _text(payload: Mapping[str, Any], key: str, *, required: bool = False) -> str:
    value = payload.get(key)
    if value is None or value == "":
        if required:
            raise NoticeError(f"the notification has no {key}")
        return ""
    if not isinstance(value, str | int):
        raise NoticeError(f"the notification's {key} is not text")
    return str(value)
