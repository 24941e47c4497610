"""What the fault scenarios share: a job store on each kind of database, and a PostgreSQL server
of the test's own for a test that stops and starts it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.postgres import PrivateServer
from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.db.job_store import JobStore


@pytest.fixture
def job_store(database_url: str) -> Iterator[JobStore]:
    store = JobStore(make_engine(database_url))
    yield store
    store.engine.dispose()


@pytest.fixture
def private_postgres() -> Iterator[PrivateServer]:
    """A running PostgreSQL server of this test's own (the shared one serves every other test,
    in every xdist worker, and must never go away under them)."""
    server = PrivateServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()
