"""The media_servers setting made into the API's hooks and the webhook sender's refreshes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.service.inboxes import confinement, file_filter, inboxes_from_settings
from whisper_transcriber.service.media_servers.hook import MediaServerHook
from whisper_transcriber.service.media_servers.servers import MediaServer
from whisper_transcriber.service.settings import Settings
from whisper_transcriber.service.webhooks.http import Answer
from whisper_transcriber.watcher.intake import Intake


def media_servers_of(settings: Settings) -> dict[str, MediaServer]:
    return {
        name: MediaServer(
            entry.kind,
            entry.url,
            entry.api_key.get_secret_value() if entry.api_key is not None else None,
            settings.webhook_timeout_s,
        )
        for name, entry in settings.media_servers.items()
    }


def media_server_hooks(settings: Settings, store: JobStore) -> dict[str, MediaServerHook]:
    if not settings.media_servers:
        return {}
    intake = Intake(
        store, inboxes_from_settings(settings), file_filter(settings), confinement(settings)
    )
    servers = media_servers_of(settings)
    return {
        name: MediaServerHook(
            name,
            entry.kind,
            servers[name],
            intake,
            # Our side resolved once (inboxes are held resolved); theirs as the server says.
            {theirs: str(Path(ours).resolve()) for theirs, ours in entry.path_map.items()},
            token=entry.token.get_secret_value() if entry.token is not None else None,
            playback=entry.playback,
            languages=tuple(entry.languages),
            refresh=entry.refresh,
        )
        for name, entry in settings.media_servers.items()
    }


def refresh_item(
    servers: Mapping[str, MediaServer], name: str, media: Mapping[str, Any], timeout_s: float
) -> Answer:
    """The webhook sender's refresh of a media server's item (a "media:NAME" delivery)."""
    server = servers.get(name)
    if server is None:
        return Answer(None, "", f"no media server is named {name!r} (the media_servers setting)")
    return server.refresh(media, timeout_s)
