"""What inbox rescans ask and record: the file versions that jobs know, and each inbox's last scan."""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from whisper_transcriber.db.identity import Signals
from whisper_transcriber.db.models import InboxScanRow, JobStatus
from whisper_transcriber.db.store_base import JOBS, StoreBase, source_path_under
from whisper_transcriber.db.values import InboxScan

INBOX_SCANS = cast(Table, InboxScanRow.__table__)


class InboxScans:
    """The watcher's questions to the database and its record of scans, for /status."""

    def __init__(self, db: StoreBase) -> None:
        self.db = db

    def known_files(self, folder: str | os.PathLike[str]) -> dict[str, set[Signals]]:
        """Every recorded version (size, mtime_ns, inode, ctime_ns) with a job, by path, for the
        files under a folder: one query, so that a rescan of a large tree costs no statement per
        file. Compare with db.identity.is_recorded."""
        # A failed job whose original was moved away does not know a file at its old path: a file
        # there now was put back from failed/, and the intake queues it again.
        stayed = (
            JOBS.c.original_moved_to.is_(None)
            | (JOBS.c.original_moved_to == "")
            | (JOBS.c.status != JobStatus.FAILED.value)
        )
        query = select(
            JOBS.c.source_path,
            JOBS.c.source_size,
            JOBS.c.source_mtime_ns,
            JOBS.c.source_inode,
            JOBS.c.source_ctime_ns,
        ).where(source_path_under(folder, self.db.engine.dialect.name), stayed)
        known: dict[str, set[Signals]] = {}
        with self.db._read() as conn:
            for path, *signals in conn.execute(query):
                known.setdefault(path, set()).add(tuple(signals))
        return known

    def record(self, scan: InboxScan) -> None:
        """Keep an inbox's latest scan (one row per name, overwritten)."""
        values = asdict(scan)
        by_name = update(INBOX_SCANS).where(INBOX_SCANS.c.name == scan.name).values(values)
        try:
            with self.db._write() as conn:
                if conn.execute(by_name).rowcount == 0:
                    conn.execute(insert(INBOX_SCANS).values(values))
        except IntegrityError:
            # Another watcher of that inbox recorded its first scan between our update and insert.
            with self.db._write() as conn:
                conn.execute(by_name)

    def latest(self) -> list[InboxScan]:
        """Every inbox's latest scan by name, inboxes no longer configured included."""
        with self.db._read() as conn:
            rows = conn.execute(select(INBOX_SCANS).order_by(INBOX_SCANS.c.name))
            return [InboxScan(**row._mapping) for row in rows]
