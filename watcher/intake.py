"""From a settled file in an inbox to a job: the watcher's business logic, off the observer."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from stat import S_ISLNK

from whisper_transcriber.db.errors import UnstorablePath
from whisper_transcriber.db.identity import is_recorded
from whisper_transcriber.db.inbox_scans import InboxScans
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.values import InboxScan, JobRecord, ObserverKind
from whisper_transcriber.db.webhook_outbox import CallbackRequest
from whisper_transcriber.watcher.filters import FileFilter
from whisper_transcriber.watcher.spec import Inbox
from whisper_transcriber.worker.confinement import Confinement
from whisper_transcriber.worker.names import printable

log = logging.getLogger(__name__)


class Intake:
    """Knows the inboxes; decides which files are input and records their jobs."""

    def __init__(
        self,
        store: JobStore,
        inboxes: Sequence[Inbox],
        file_filter: FileFilter,
        confinement: Confinement,
    ) -> None:
        self.store = store
        self.scans = InboxScans(store)
        self.inboxes = tuple(inboxes)
        self.file_filter = file_filter
        self.confinement = confinement  # where links in an inbox may lead
        # host:pid, so that /status says which instance scanned.
        self.instance = f"{socket.gethostname()}:{os.getpid()}"
        # Files whose names the database cannot hold, by path: the (size, mtime) already told.
        self._unstorable: dict[str, tuple[int, int]] = {}

    def inbox_of(self, path: Path) -> Inbox | None:
        return next((inbox for inbox in self.inboxes if inbox.holds(path)), None)

    def wants(self, path: Path) -> bool:
        """A media file inside an inbox (not in its outbox, done or failed folder), not clutter."""
        inbox = self.inbox_of(path)
        return inbox is not None and self.file_filter.is_candidate(path, inbox.root)

    def wants_folder_link(self, path: Path) -> bool:
        """A symbolic link to a folder, in an inbox, under a name not ignored (touches the disk)."""
        inbox = self.inbox_of(path)
        return (
            inbox is not None
            and not self.file_filter.is_ignored(path, inbox.root)
            and path.is_symlink()
            and path.is_dir()
        )

    def take(self, path: Path) -> JobRecord | None:
        """Record the job for a settled file (or a folder link out of the allowed folders, which
        is refused); the job when one was created or requeued."""
        job, created = self._record(path)
        return job if created else None

    def requested(
        self, path: Path, callback: CallbackRequest | None = None
    ) -> tuple[JobRecord | None, bool]:
        """The job of a file someone asked about (a media server's new item), recorded as a
        scan would record it, with the callback; (None, False) for a file the inbox does not
        take, or that is not there. created: recorded or requeued now."""
        if not path.is_file():  # a scan finds only what exists
            return None, False
        return self._record(path, callback)

    def _record(
        self, path: Path, callback: CallbackRequest | None = None
    ) -> tuple[JobRecord | None, bool]:
        inbox = self.inbox_of(path)
        if inbox is None:
            return None, False
        if not storable(path):
            self._refuse_unstorable(path)
            return None, False
        escape = self.confinement.link_escape(path, inbox.root)
        if escape is not None and (
            self.file_filter.is_candidate(path, inbox.root) or self.wants_folder_link(path)
        ):
            job, created = self.store.refuse(
                escape.link, inbox.options, inbox.origin, escape.reason
            )
            if created:
                log.warning("job %s: %s", job.id, escape.reason)
            return job, created
        if not self.file_filter.is_candidate(path, inbox.root):
            return None, False
        plan = inbox.plan(path)
        try:
            job, created = self.store.enqueue(
                path,
                plan.options,
                inbox.origin,
                move_on_done=plan.move_on_done,
                move_on_failure=plan.move_on_failure,
                any_options=True,
                callback=callback,
            )
        except UnstorablePath:  # a link whose target's name is not UTF-8
            self._refuse_unstorable(path)
            return None, False
        if created:
            log.info("job %s: queued %s", job.id, path)
            return job, True
        if job.status is JobStatus.FAILED and job.original_moved_to:
            # It went to failed/ and someone put it back: that asks for another go.
            job = self.store.retry(job.id)
            log.info("job %s: %s is back in %s; queued again", job.id, path, inbox.name)
            return job, True
        return job, False

    def _refuse_unstorable(self, path: Path) -> None:
        """A file whose name the database cannot hold: said once per version of the file (size
        and mtime), and remembered, so that neither rescans nor events bring it back."""
        try:
            stat = path.stat()
        except OSError:
            return  # gone
        version = (stat.st_size, stat.st_mtime_ns)
        if self._unstorable.get(str(path)) != version:
            self._unstorable[str(path)] = version
            log.warning("%s", unstorable_reason(path))

    def new_files(self, inbox: Inbox) -> Iterator[Path]:
        """Files of the inbox that no job knows in their current version (db/identity.py: size,
        mtime, inode and ctime; enqueue looks closer where only inode or ctime moved).

        One query for what is known, then a walk: a rescan costs no statement per old file.
        Versions, not options: a file known with other options (a request's) is not new."""
        known = self.scans.known_files(inbox.root)
        real_folders: dict[Path, str] = {}  # jobs are recorded under their files' real paths
        for path in self.walk(inbox):
            try:
                stat = path.lstat()
                if S_ISLNK(stat.st_mode) and str(path) in known:
                    recorded_as = str(path)  # a refused link: recorded as itself
                elif S_ISLNK(stat.st_mode):
                    stat = path.stat()
                    recorded_as = os.path.realpath(path)
                else:  # the folder may have been reached through a folder link
                    folder = real_folders.get(path.parent)
                    if folder is None:
                        folder = real_folders[path.parent] = os.path.realpath(path.parent)
                    recorded_as = os.path.join(folder, path.name)
            except OSError:
                continue  # gone since the walk listed it
            if self._unstorable.get(str(path)) == (stat.st_size, stat.st_mtime_ns):
                continue  # refused already, and unchanged since
            found = (stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns)
            if not is_recorded(known.get(recorded_as, ()), found):
                yield path

    def record_scan(
        self, inbox: Inbox, observer: ObserverKind, new_files: int, at: datetime
    ) -> None:
        """Note the scan in the database: the instance that answers /status may watch nothing."""
        self.scans.record(
            InboxScan(
                name=inbox.name,
                path=str(inbox.root),
                observer=observer,
                poll_interval_s=inbox.poll_interval_s if observer == "polling" else None,
                last_scan_at=at,
                last_scan_new=new_files,
                scanned_by=self.instance,
            )
        )

    def walk(self, inbox: Inbox, top: Path | None = None) -> Iterator[Path]:
        """Candidate files under the inbox (or its folder top), not descending into ignored or
        excluded folders.

        Folder links are followed where they lead inside the allowed folders (each real folder
        once: links can make loops); a folder link leading out is yielded itself, unopened,
        for the intake to refuse."""
        excluded = {str(folder) for folder in inbox.excluded}
        visited: set[str] = set()
        start = top or inbox.root
        if start.is_symlink() and not self.confinement.allows(start):
            yield start
            return
        for folder, dirs, files in os.walk(start, followlinks=True):
            real = os.path.realpath(folder)
            if real in visited:
                dirs.clear()
                continue
            visited.add(real)
            kept = []
            for name in dirs if inbox.recursive else ():
                sub = os.path.join(folder, name)
                if self.file_filter.ignores_name(name) or sub in excluded:
                    continue
                if os.path.islink(sub) and not self.confinement.allows(sub):
                    yield Path(sub)
                    continue
                kept.append(name)
            dirs[:] = kept
            for name in files:
                if self.file_filter.ignores_name(name):
                    continue
                path = Path(folder, name)
                if self.file_filter.is_media(path):
                    yield path


def storable(path: Path) -> bool:
    """Whether the database can hold the path: names that are not valid UTF-8 (Python holds
    their bytes as lone surrogates) cannot be stored by SQLite or PostgreSQL."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unstorable_reason(path: Path) -> str:
    return (
        f"not taken: {printable(str(path))}: the name is not valid UTF-8 (a name in another "
        "character set, as SMB shares and old archives have), and the job database stores "
        "names as UTF-8; give it a UTF-8 name (for example with convmv -f latin1 -t utf-8) "
        "and it is taken"
    )
