"""Fixtures: a real SQLite file and a fresh real PostgreSQL database per test, speech fixtures."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine

from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.migrate import upgrade

FIXTURES = Path(__file__).parent / "fixtures"
# The PostgreSQL server the tests use; CI fails (never skips) when it cannot be reached.
POSTGRES_ADMIN_URL = os.environ.get(
    "WT_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/postgres"
)
ENV_PREFIX = "WHISPER_TRANSCRIBER_"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def expected_speech() -> dict[str, dict[str, object]]:
    data: dict[str, dict[str, object]] = json.loads((FIXTURES / "expected.json").read_text())
    return data


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is required for the tests and unreachable at {POSTGRES_ADMIN_URL}: {exc}",
            pytrace=False,
        )


def _url_for(database: str) -> str:
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A database migrated once; each test copies it (CREATE DATABASE ... TEMPLATE)."""
    name = f"wt_template_{uuid.uuid4().hex[:8]}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(_url_for(name))
    upgrade(engine)
    engine.dispose()
    yield name
    with _admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_template: str) -> Iterator[str]:
    name = f"wt_test_{uuid.uuid4().hex[:12]}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    yield _url_for(name)
    with _admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty database of each kind."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def db_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def store(db_engine: Engine) -> JobStore:
    return JobStore(db_engine)


@pytest.fixture(scope="session")
def long_speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About a minute of real speech: long enough to catch its job while it runs."""
    from tests.media import long_recording  # tests.media imports this module

    return long_recording(tmp_path_factory.mktemp("audio") / "long.wav", repeats=15)
