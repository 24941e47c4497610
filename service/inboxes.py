"""Start-up checks of the inbox folders."""

from __future__ import annotations

import os

from service.settings import DEFAULT_INBOX, SettingError, Settings


def ensure_inboxes(settings: Settings) -> None:
    """The default ./inbox is made on first run; any other inbox must already be a readable folder."""
    for inbox in settings.inboxes:
        if inbox == DEFAULT_INBOX and not inbox.exists():
            inbox.mkdir(parents=True)
        if not inbox.is_dir():
            raise SettingError("inboxes", f"inbox {inbox} is not an existing folder")
        if not os.access(inbox, os.R_OK | os.X_OK):
            raise SettingError("inboxes", f"inbox {inbox} is not readable")
