"""Fixtures: a real SQLite file and a fresh real PostgreSQL database per test, speech fixtures;
each test marked with its tier."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine

from tests.helpers.media import FIXTURES, long_recording
from tests.helpers.postgres import admin, url_for
from tests.helpers.tiers import tier_of
from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.migrate import upgrade

if TYPE_CHECKING:
    from whisper_transcriber.worker.engine import Engine as ModelEngine

ENV_PREFIX = "WHISPER_TRANSCRIBER_"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test is marked with its tier, the folder it lives in (tests/helpers/tiers.py)."""
    for item in items:
        tier = tier_of(item.path)
        if tier is not None:
            item.add_marker(tier)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def expected_speech() -> dict[str, dict[str, object]]:
    data: dict[str, dict[str, object]] = json.loads((FIXTURES / "expected.json").read_text())
    return data


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A database migrated once; each test copies it (CREATE DATABASE ... TEMPLATE)."""
    name = f"wt_template_{uuid.uuid4().hex[:8]}"
    with admin() as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(url_for(name))
    upgrade(engine)
    engine.dispose()
    yield name
    with admin() as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_template: str) -> Iterator[str]:
    name = f"wt_test_{uuid.uuid4().hex[:12]}"
    with admin() as connection:
        connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    yield url_for(name)
    with admin() as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
def engine() -> ModelEngine:
    """The real model, the bundled tiny.en on the CPU with one thread: loaded once per test
    process (each xdist worker) for every test that transcribes in this process."""
    from whisper_transcriber.worker.engine import Engine, resolve_model  # the model stack

    return Engine(resolve_model("bundled"), "cpu", "int8", cpu_threads=1)


@pytest.fixture(scope="session")
def multilingual_engine(tmp_path_factory: pytest.TempPathFactory) -> ModelEngine:
    """The bundled multilingual model (Whisper base, the multilingual extra), joined into a
    temporary model cache, on the CPU with one thread."""
    from whisper_transcriber.worker.engine import Engine, resolve_model
    from whisper_transcriber.worker.models import fetch

    spec = fetch(resolve_model("bundled-base", tmp_path_factory.mktemp("models")))
    return Engine(spec, "cpu", "int8", cpu_threads=1)


@pytest.fixture(scope="session")
def long_speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About a minute of real speech: long enough to catch its job while it runs."""
    return long_recording(tmp_path_factory.mktemp("audio") / "long.wav", repeats=15)
