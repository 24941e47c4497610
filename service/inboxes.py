"""The inboxes from the settings: checked at start-up and turned into the watcher's Inbox values."""

from __future__ import annotations

import os
from pathlib import Path

from service.settings import DEFAULT_INBOX, InboxSettings, SettingError, Settings
from watcher.filters import FileFilter
from watcher.spec import Inbox


def ensure_inboxes(settings: Settings) -> None:
    """The default ./inbox is made on first run; any other inbox must already be a readable folder.

    Also checks what only the whole list can tell (two inboxes of one name)."""
    inboxes_from_settings(settings)
    for inbox in settings.inboxes:
        folder = inbox.path.expanduser()
        if folder == DEFAULT_INBOX and not folder.exists():
            folder.mkdir(parents=True)
        if not folder.is_dir():
            raise SettingError("inboxes", f"inbox {folder} is not an existing folder")
        try:  # reading it is the only honest test (ACLs, root squash on NFS, ...)
            with os.scandir(folder) as entries:
                next(entries, None)
        except OSError as exc:
            raise SettingError(
                "inboxes", f"inbox {folder} is not readable: {exc.strerror}"
            ) from exc


def file_filter(settings: Settings) -> FileFilter:
    return FileFilter.of(settings.media_extensions, settings.ignore_patterns)


def inboxes_from_settings(settings: Settings) -> list[Inbox]:
    """Each inbox with its options over the service's defaults, folders resolved."""
    inboxes = [_inbox(config, settings) for config in settings.inboxes]
    names = [inbox.name for inbox in inboxes]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate is not None:
        raise SettingError("inboxes", f"two inboxes are named {duplicate!r}; give them names")
    return inboxes


def _inbox(config: InboxSettings, settings: Settings) -> Inbox:
    root = config.path.expanduser().resolve()
    defaults = settings.job_options()
    overrides: dict[str, object] = {"output_dir": None, "media_library": config.media_library}
    if config.language is not None:
        overrides["language"] = config.language
    if config.task is not None:
        overrides["task"] = config.task
    if config.formats is not None:
        overrides["formats"] = tuple(config.formats)
    elif config.media_library:
        overrides["formats"] = ("srt",)  # what media servers show; more when asked
    outbox = config.outbox or settings.output_dir
    return Inbox(
        root=root,
        name=config.name or root.name,
        options=defaults.model_copy(update=overrides),
        recursive=config.recursive,
        observer=config.observer,
        poll_interval_s=config.poll_interval_s,
        outbox=_resolve(outbox),
        done_dir=_resolve(config.done_dir or root / "done")
        if config.on_success == "move"
        else None,
        failed_dir=(
            _resolve(config.failed_dir or root / "failed") if config.on_failure == "move" else None
        ),
    )


def _resolve(folder: Path | None) -> Path | None:
    return folder.expanduser().resolve() if folder is not None else None
