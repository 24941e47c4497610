"""What the fault scenarios share: an unprivileged service, the PostgreSQL cluster, and checks of
what a batch left behind (one set of transcripts per file, no temporaries)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.db.job_store import JobStore

FORMATS = ("txt", "srt", "vtt", "json", "tsv")


def unprivileged() -> tuple[str, ...]:
    """The command prefix that runs the service as root without root's power over file
    permissions (setpriv drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH): a file without read
    permission is then unreadable to it, as to any service account. Nothing when not root."""
    if os.geteuid() != 0:
        return ()
    return ("setpriv", "--bounding-set=-dac_override,-dac_read_search")


@pytest.fixture
def job_store(database_url: str) -> Iterator[JobStore]:
    store = JobStore(make_engine(database_url))
    yield store
    store.engine.dispose()


def temporaries(folder: Path) -> list[Path]:
    """Half-written transcripts (".wt-SOURCETAG-RANDOM.tmp") anywhere under folder."""
    return [path for path in folder.rglob(".*.tmp")]


def transcript_files(source: Path, folder: Path | None = None) -> list[str]:
    """The transcripts written for source (beside it, or in folder), by name."""
    where = folder or source.parent
    return sorted(
        path.name
        for path in where.iterdir()
        if path.stem == source.stem and path.suffix.lstrip(".") in FORMATS
    )


def one_set_of_transcripts(source: Path, folder: Path | None = None) -> bool:
    return transcript_files(source, folder) == sorted(f"{source.stem}.{fmt}" for fmt in FORMATS)


def postgres_cluster() -> tuple[str, str]:
    """(version, name) of the local cluster the tests use, as pg_ctlcluster names it."""
    versions = sorted(os.listdir("/etc/postgresql"))
    return versions[-1], "main"


def pg_ctlcluster(action: str) -> None:
    version, name = postgres_cluster()
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, action],
        check=True,
        capture_output=True,
        timeout=120,
    )
