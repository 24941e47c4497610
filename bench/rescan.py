"""Start-up rescan of a large inbox: a tree of 100,000 files of which 100 are new.

Builds the tree (empty .wav files in 1,000 folders), records a done job for every file but the
new ones straight into the database (one bulk insert: the state a service that has worked through
the library leaves), then times what the service does at start-up: InboxWatcher.rescan (one query
for the known files, a walk and a stat per file), and, with the settle loop running, the time
until the 100 new files are jobs. Target: under 30 s on the 2-core VM.

    .venv/bin/python bench/rescan.py [--files 100000] [--new 100] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, insert, select

from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.db.identity import (
    file_work_key,
    options_key,
    sampled_fingerprint,
    version_of_stat,
)
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.migrate import upgrade
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.store_base import JOBS
from whisper_transcriber.db.values import JobOptions
from whisper_transcriber.service.inboxes import confinement, file_filter, inboxes_from_settings
from whisper_transcriber.service.settings import load_settings
from whisper_transcriber.watcher.inbox import InboxWatcher
from whisper_transcriber.watcher.intake import Intake

PER_FOLDER = 100
SETTLE_S = 2.0
WAIT_S = 300.0


def build_tree(root: Path, files: int) -> list[Path]:
    paths = []
    for n in range(files):
        folder = root / f"show-{n // PER_FOLDER:04}"
        if n % PER_FOLDER == 0:
            folder.mkdir(parents=True)
        path = folder / f"episode-{n % PER_FOLDER:03}.wav"
        path.touch()
        paths.append(path)
    return paths


def record_done(store: JobStore, paths: list[Path]) -> None:
    now = datetime.now(UTC)
    options = JobOptions().model_dump(mode="json")
    key_of_options = options_key(JobOptions())
    rows = []
    for path in paths:
        stat = path.stat()
        version = version_of_stat(str(path), stat)
        rows.append(
            {
                "source_path": str(path), "source_size": stat.st_size,
                "source_mtime_ns": stat.st_mtime_ns, "source_inode": stat.st_ino,
                "source_ctime_ns": stat.st_ctime_ns,
                "source_fingerprint": sampled_fingerprint(path, stat.st_size),
                "options_key": key_of_options,
                "dedupe_key": file_work_key(version, key_of_options), "origin": "inbox:library",
                "options": options, "status": JobStatus.DONE.value, "attempts": 1,
                "max_attempts": 3, "run_after": now, "progress": 1.0, "outputs": [],
                "created_at": now, "updated_at": now, "finished_at": now,
            }
        )  # fmt: skip
    with store.engine.begin() as conn:
        for start in range(0, len(rows), 5000):
            conn.execute(insert(JOBS), rows[start : start + 5000])


def bare_walk(root: Path) -> int:
    """The baseline: what any rescan must do, a walk and a stat per file, and nothing else."""
    count = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            os.lstat(os.path.join(folder, name))
            count += 1
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--new", type=int, default=100)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--observer", choices=["native", "polling"], default="native")
    parser.add_argument(
        "--chmod", type=int, default=1000, help="files whose mode changes before a last rescan"
    )
    args = parser.parse_args()
    print(f"command: {' '.join(sys.argv)}")
    with tempfile.TemporaryDirectory() as workdir:
        root = Path(workdir) / "library"
        database_url = args.database_url or f"sqlite:///{workdir}/jobs.db"
        engine = make_engine(database_url)
        upgrade(engine)
        store = JobStore(engine)
        started = time.monotonic()
        paths = build_tree(root, args.files)
        record_done(store, paths[: args.files - args.new])
        print(f"setup: {args.files} files, {args.files - args.new} done jobs recorded in "
              f"{time.monotonic() - started:.1f} s")  # fmt: skip
        os.sync()

        started = time.monotonic()
        walked = bare_walk(root)
        bare_s = time.monotonic() - started

        inbox = f"{root}?observer={args.observer}&poll_interval_s=10"
        settings = load_settings(inboxes=[inbox], settle_s=SETTLE_S)
        intake = Intake(
            store, inboxes_from_settings(settings), file_filter(settings), confinement(settings)
        )
        watcher = InboxWatcher(intake, settle_s=SETTLE_S)
        started = time.monotonic()
        watcher.start()  # the observer (inotify on every folder), then the start-up rescan
        scanned = time.monotonic() - started
        found = watcher.tracker.pending()
        count = select(func.count()).select_from(JOBS).where(JOBS.c.status == "queued")
        while True:
            with engine.connect() as conn:
                queued = conn.execute(count).scalar_one()
            if queued >= args.new or time.monotonic() - started > WAIT_S:
                break
            time.sleep(0.05)
        queued_s = time.monotonic() - started
        started = time.monotonic()
        again = watcher.rescan()  # what the scheduler's periodic rescan costs when nothing is new
        rescan_s = time.monotonic() - started
        # A chmod moves ctime and leaves the bytes: each such file is looked at closer (a sampled
        # fingerprint) by the rescan after it, which must queue nothing, and the one after that
        # is quiet again.
        for path in paths[: args.chmod]:
            path.chmod(0o640)
        started = time.monotonic()
        after_chmod = watcher.rescan()
        chmod_s = time.monotonic() - started
        while watcher.tracker.pending() and time.monotonic() - started < WAIT_S:
            time.sleep(0.05)  # they settle, then enqueue compares their fingerprints
        closer_s = time.monotonic() - started
        with engine.connect() as conn:
            queued_after_chmod = conn.execute(count).scalar_one() - queued
        started = time.monotonic()
        quiet = watcher.rescan()
        quiet_s = time.monotonic() - started
        watcher.stop()
        engine.dispose()
    print(f"database: {engine.dialect.name}")
    print(f"baseline (a bare walk and lstat of {walked} files): {bare_s:.2f} s")
    print(f"later rescan / baseline: {rescan_s / bare_s:.2f}")
    print(f"start ({args.observer} observer + rescan): {scanned:.2f} s, {found} new files found")
    print(f"until all {queued} new files were queued: {queued_s:.2f} s "
          f"(including the {SETTLE_S:g} s settle time)")  # fmt: skip
    print(f"a later rescan (nothing new): {rescan_s:.2f} s, {again} found")
    print(f"the rescan after a chmod of {args.chmod} files: {chmod_s:.2f} s, {after_chmod} "
          f"to look at closer; all looked at after {closer_s:.2f} s (settle time included), "
          f"{queued_after_chmod} queued")  # fmt: skip
    print(f"the rescan after that: {quiet_s:.2f} s, {quiet} found")
    ok = found == args.new and queued == args.new and queued_after_chmod == 0 and quiet == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
