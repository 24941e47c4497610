"""A media server's notification becomes a job: "item added" (and, when asked for, "playback
started" of an item without a subtitle in the wanted languages) for a file in an inbox, recorded
as that inbox's scan would record it (its options, its media-library rules, its confinement),
with the media server's refresh of the item to follow once the job is done.

The route (api/routes/media_servers.py) hands the parsed body here; the answer is a status, a
sentence, and the job when there is one.
"""

from __future__ import annotations

import logging
import ntpath
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from whisper_transcriber.db.values import JobRecord
from whisper_transcriber.db.webhook_outbox import CallbackRequest
from whisper_transcriber.service.media_servers.notices import (
    Notice,
    NoticeError,
    ServerKind,
    notice_of,
)
from whisper_transcriber.service.media_servers.servers import MediaServer, MediaServerError
from whisper_transcriber.watcher.intake import Intake, storable
from whisper_transcriber.worker.names import printable
from whisper_transcriber.worker.sidecars import language_names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HookAnswer:
    status: int
    detail: str
    job: JobRecord | None = None


@dataclass(frozen=True)
class MediaServerHook:
    name: str
    kind: ServerKind
    server: MediaServer
    intake: Intake
    path_map: Mapping[str, str]
    token: str | None = None
    playback: bool = False
    languages: tuple[str, ...] = ()
    refresh: bool = True

    def handle(self, payload: Mapping[str, Any]) -> HookAnswer:
        try:
            notice = notice_of(self.kind, payload)
        except NoticeError as exc:
            return HookAnswer(400, f"not a {self.kind} notification: {exc}")
        if notice.event == "other" or (notice.event == "playback" and not self.playback):
            return HookAnswer(200, f"{notice.what or 'this notification'}: nothing to do")
        if notice.item_type and not notice.playable:
            return HookAnswer(200, f"a {notice.item_type} has no file of its own: nothing to do")
        try:
            theirs, subtitles = self._item(notice)
        except MediaServerError as exc:
            return HookAnswer(502, str(exc))
        if notice.event == "playback":
            had = self._wanted_subtitle(subtitles)
            if had is not None:
                return HookAnswer(200, f"item {notice.item_id} has a subtitle in {had}")
        if "\x00" in theirs or not storable(Path(theirs)):
            return HookAnswer(400, "the notification's file path is not a valid path")
        ours = mapped(self.path_map, theirs)
        if ours is None:
            return HookAnswer(
                422,
                f"{theirs} is under none of the path_map prefixes of media server {self.name}",
            )
        callback = None
        if self.refresh and self.server.api_key is not None:
            callback = CallbackRequest(
                "",
                "",
                ("done",),
                media={"server": self.name, "item": notice.item_id},
            )
        if self.intake.inbox_of(ours) is None:
            return HookAnswer(403, f"{ours} is in no inbox; add its library folder as an inbox")
        if not ours.is_file():  # what a scan would never find: nothing to record
            return HookAnswer(422, f"there is no file at {ours}")
        job, created = self.intake.requested(ours, callback)
        if job is None:
            return HookAnswer(422, f"{ours} is not a file its inbox takes (kind, name or place)")
        log.info(
            "media server %s: %s of item %s: job %s%s",
            self.name,
            printable(notice.what)[:40],
            notice.item_id,
            job.id,
            "" if created else " (already recorded)",
        )
        return HookAnswer(202 if created else 200, f"job {job.id}", job)

    def _item(self, notice: Notice) -> tuple[str, tuple[str, ...]]:
        """The server's path of the item's file and its subtitles' languages: from the
        notification where it says, else from the server."""
        needs_subtitles = notice.event == "playback" and notice.subtitle_languages is None
        if notice.path is not None and not needs_subtitles:
            return notice.path, notice.subtitle_languages or ()
        item = self.server.item(notice.item_id)
        path = notice.path or item.path
        if path is None:
            raise MediaServerError(
                f"the {self.kind} server names no file for item {notice.item_id}"
            )
        return path, item.subtitle_languages

    def _wanted_subtitle(self, languages: tuple[str, ...]) -> str | None:
        """The wanted language the item has a subtitle in (any, without languages); None."""
        if not self.languages:
            if not languages:
                return None
            return languages[0] or "an unknown language"
        for wanted in self.languages:
            names = language_names(wanted)
            if any(language in names for language in languages):
                return wanted
        return None


def mapped(path_map: Mapping[str, str], theirs: str) -> Path | None:
    """The server's path as ours: the longest path_map prefix replaced (whole folder names
    only), after its dots are resolved as the server would; the same path when there is no map
    (an absolute one). None: under no prefix. A prefix says how the server writes paths: with a
    drive letter or backslashes, Windows's (any case); else POSIX's, where a backslash is a
    character of a name."""
    if not path_map:
        path_map = {"/": "/"}
    for prefix in sorted(path_map, key=len, reverse=True):
        windows = "\\" in prefix or (len(prefix) > 1 and prefix[1] == ":")
        if windows:
            normal, base = ntpath.normpath(theirs).lower(), ntpath.normpath(prefix).lower()
            original = ntpath.normpath(theirs)
        else:
            original = (
                "/" + posixpath.normpath(theirs).lstrip("/") if theirs.startswith("/") else ""
            )
            normal, base = original, "/" + posixpath.normpath(prefix).lstrip("/")
        if not normal:
            continue
        if normal == base or normal.startswith(base.rstrip("/\\") + ("\\" if windows else "/")):
            rest = original[len(base) :]
            if windows:
                rest = rest.replace("\\", "/")
            parts = [p for p in rest.split("/") if p]
            if any(p in (".", "..") for p in parts):
                return None
            return Path(path_map[prefix], *parts)
    return None
