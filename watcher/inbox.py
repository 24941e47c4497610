"""Watches inbox folders: watchdog records events, a settle loop enqueues files once stable."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from whisper_transcriber.db.errors import DatabaseRefused, QueueError
from whisper_transcriber.db.values import ObserverKind
from whisper_transcriber.watcher.intake import Intake
from whisper_transcriber.watcher.spec import Inbox
from whisper_transcriber.watcher.stability import SETTLE_S, StabilityTracker

SETTLE_CHECK_INTERVAL_S = 0.25  # while some file is settling; with none, the loop sleeps
# Events that say nothing about a file's content.
_QUIET_EVENTS = frozenset({"opened", "closed_no_write"})

log = logging.getLogger(__name__)


class _RecordEvents(FileSystemEventHandler):
    """Runs on the observer thread: only notes which path changed, never touches disk or database."""

    def __init__(
        self,
        intake: Intake,
        tracker: StabilityTracker,
        folders: queue.Queue[Path],
        wake: Callable[[], None],
    ):
        self.intake = intake
        self.tracker = tracker
        self.folders = folders
        self.wake = wake  # the settle loop, after a folder was queued

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _QUIET_EVENTS:
            return
        raw_paths = [p for p in (event.src_path, getattr(event, "dest_path", "")) if p]
        paths = [Path(os.fsdecode(raw)) for raw in raw_paths]
        if event.is_directory:
            # A folder moved or copied in brings no events for the files already inside it.
            if event.event_type in ("created", "moved"):
                self.folders.put(paths[-1])
                self.wake()
            return
        for path in paths:
            if self.intake.wants(path):
                self.tracker.mark(path)
            elif event.event_type in ("created", "moved"):
                # Maybe a link to a folder (inotify calls a link a file): the settle thread looks.
                self.folders.put(path)
                self.wake()


class InboxWatcher:
    """Observers per inbox (inotify or polling), a start-up scan, rescans on demand, and a settle
    thread that hands each file to the intake once its size and mtime have held still."""

    def __init__(self, intake: Intake, *, settle_s: float = SETTLE_S) -> None:
        self.intake = intake
        self._activity = threading.Event()  # a file marked or a folder queued: the loop wakes
        self.tracker = StabilityTracker(settle_s, on_mark=self._activity.set)
        self.last_scan: dict[str, datetime] = {}
        # By inbox name: how its changes are really seen (polling after inotify failed, too).
        self.observers_used: dict[str, ObserverKind] = {}
        self.settled = 0  # files handed to the intake so far, whatever it made of them
        self._folders: queue.Queue[Path] = queue.Queue()
        self._observers: list[BaseObserver] = []
        self._stop = threading.Event()
        self._scan_lock = threading.Lock()
        self._settle_thread = threading.Thread(
            target=self._settle_loop, name="inbox-settle", daemon=True
        )

    def start(self) -> None:
        handler = _RecordEvents(self.intake, self.tracker, self._folders, self._activity.set)
        for inbox in self.intake.inboxes:
            observer = self._observe(inbox, handler)
            self._observers.append(observer)
            self.observers_used[inbox.name] = (
                "polling" if isinstance(observer, PollingObserver) else "native"
            )
        # After the observers start, so that nothing arriving in between is missed.
        try:
            self.rescan()
        except QueueError as exc:  # the database is away: events still come, rescans catch up
            log.warning("start-up scan skipped: %s; the next rescan looks again", exc)
        self._settle_thread.start()
        log.info(
            "watching %s",
            ", ".join(f"{inbox.root} ({_describe(inbox)})" for inbox in self.intake.inboxes),
        )

    @staticmethod
    def _observe(inbox: Inbox, handler: _RecordEvents) -> BaseObserver:
        """A started observer of one inbox; polling when asked, or when inotify cannot watch it
        (its watch limit reached, a file system without inotify)."""
        if inbox.observer == "native":
            native = Observer()
            native.schedule(handler, str(inbox.root), recursive=inbox.recursive)
            try:
                native.start()
                return native
            except OSError as exc:
                log.warning(
                    "inotify cannot watch %s (%s); polling it every %g s instead",
                    inbox.root,
                    exc,
                    inbox.poll_interval_s,
                )
        polling = PollingObserver(timeout=inbox.poll_interval_s)
        polling.schedule(handler, str(inbox.root), recursive=inbox.recursive)
        polling.start()
        return polling

    def stop(self) -> None:
        self._stop.set()
        self._activity.set()
        for observer in self._observers:
            observer.stop()
        for observer in self._observers:
            if observer.is_alive():
                observer.join()
        if self._settle_thread.is_alive():
            self._settle_thread.join()

    def rescan(self) -> int:
        """Look at every inbox for files no job knows (arrived while down, or events a NAS
        dropped); they settle like any other. Returns how many were found."""
        found = 0
        with self._scan_lock:  # the scheduler's rescan and a slow start-up scan must not overlap
            for inbox in self.intake.inboxes:
                started = time.monotonic()
                count = 0
                for path in self.intake.new_files(inbox):
                    self.tracker.mark(path)
                    count += 1
                scanned_at = datetime.now(UTC)
                self.last_scan[inbox.name] = scanned_at
                log.debug(
                    "scanned %s in %.2f s: %s new", inbox.root, time.monotonic() - started, count
                )
                found += count
                self._record_scan(inbox, count, scanned_at)
        return found

    def _record_scan(self, inbox: Inbox, count: int, scanned_at: datetime) -> None:
        """The scan is done whether or not the database hears of it: a failure is one line."""
        observer = self.observers_used.get(inbox.name)
        if observer is None:  # scanned before start(): what the settings ask for
            observer = inbox.observer
        try:
            self.intake.record_scan(inbox, observer, count, scanned_at)
        except QueueError as exc:
            log.warning("could not record the scan of %s: %s", inbox.name, exc)

    def _settle_loop(self) -> None:
        while not self._stop.is_set():
            if self.tracker.pending() or not self._folders.empty():
                self._stop.wait(SETTLE_CHECK_INTERVAL_S)
            else:  # nothing settling: asleep until an event, a scan or stop() marks something
                self._activity.wait()
            # What marked it is already visible to the checks below and the next round's.
            self._activity.clear()
            if self._stop.is_set():
                return
            self._mark_arrived_folders()
            for path in self.tracker.stable(time.monotonic()):
                try:
                    self.intake.take(path)
                except DatabaseRefused as exc:  # this file's job cannot be stored: not again
                    log.error(
                        "cannot record a job for %s: the database refused it: %s; it is tried "
                        "again at the next rescan",
                        path,
                        exc,
                    )
                    continue
                except QueueError as exc:  # the database is away: the file waits its turn again
                    log.warning("could not enqueue %s (%s); will try again", path, exc)
                    self.tracker.mark(path)
                    continue
                except Exception:  # one bad file must not end the watch
                    log.exception("could not enqueue %s; will try again", path)
                    self.tracker.mark(path)
                    continue
                self.settled += 1

    def _mark_arrived_folders(self) -> None:
        while True:
            try:
                folder = self._folders.get_nowait()
            except queue.Empty:
                return
            inbox = self.intake.inbox_of(folder)
            if inbox is None or not (folder.is_dir() or self.intake.wants_folder_link(folder)):
                continue
            for path in self.intake.walk(inbox, folder):
                if self.intake.wants(path) or self.intake.wants_folder_link(path):
                    self.tracker.mark(path)


def _describe(inbox: Inbox) -> str:
    native = "native events"
    how = f"polling every {inbox.poll_interval_s:g} s" if inbox.observer == "polling" else native
    return f"{how}{'' if inbox.recursive else ', top folder only'}"
