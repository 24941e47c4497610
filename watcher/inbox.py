"""Watches inbox folders: watchdog records events, a settle loop enqueues files once stable."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from watcher.filters import is_candidate
from watcher.stability import SETTLE_S, StabilityTracker

SETTLE_CHECK_INTERVAL_S = 0.25

log = logging.getLogger(__name__)


class _RecordEvents(FileSystemEventHandler):
    """Runs on the observer thread: only notes which path changed."""

    def __init__(self, root: Path, tracker: StabilityTracker) -> None:
        self.root = root
        self.tracker = tracker

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if raw:
                path = Path(os.fsdecode(raw))
                if is_candidate(path, self.root):
                    self.tracker.mark(path)


def scan(root: Path) -> Iterator[Path]:
    """Every candidate file under an inbox, for the start-up scan."""
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder, name)
            if is_candidate(path, root):
                yield path


class InboxWatcher:
    """Hands each stable file to on_stable (which enqueues it) off the observer thread."""

    def __init__(
        self,
        inboxes: list[Path],
        on_stable: Callable[[Path], None],
        *,
        settle_s: float = SETTLE_S,
        polling: bool = False,
    ) -> None:
        self.inboxes = [inbox.resolve() for inbox in inboxes]
        self.on_stable = on_stable
        self.tracker = StabilityTracker(settle_s)
        self._observer = PollingObserver() if polling else Observer()
        self._stop = threading.Event()
        self._settle_thread = threading.Thread(
            target=self._settle_loop, name="inbox-settle", daemon=True
        )

    def start(self) -> None:
        for inbox in self.inboxes:
            self._observer.schedule(_RecordEvents(inbox, self.tracker), str(inbox), recursive=True)
        self._observer.start()
        # After the observer starts, so that nothing arriving in between is missed.
        for inbox in self.inboxes:
            for path in scan(inbox):
                self.tracker.mark(path)
        self._settle_thread.start()
        log.info("watching %s", ", ".join(str(inbox) for inbox in self.inboxes))

    def stop(self) -> None:
        self._stop.set()
        self._observer.stop()
        self._observer.join()
        if self._settle_thread.is_alive():
            self._settle_thread.join()

    def _settle_loop(self) -> None:
        while not self._stop.wait(SETTLE_CHECK_INTERVAL_S):
            for path in self.tracker.stable(time.monotonic()):
                try:
                    self.on_stable(path)
                except Exception:  # one bad file or a database hiccup must not end the watch
                    log.exception("could not enqueue %s; will try again", path)
                    self.tracker.mark(path)
