"""The unit tier: no model, no subprocess, no database server. Each test here runs with all three
refused (a temporary SQLite file is allowed: it is a file), so that a test which reaches for one
fails, saying which tier it belongs to instead of slowing this one down."""

from __future__ import annotations

import multiprocessing.process
import subprocess
from collections.abc import Callable
from typing import Any, NoReturn

import faster_whisper
import psycopg
import pytest

TIER_ADVICE = "it belongs in tests/integration (or tests/e2e), not the unit tier"


def refused(what: str) -> Callable[..., NoReturn]:
    def refuse(*_args: Any, **_kwargs: Any) -> NoReturn:
        # pytest.fail, not an Exception: code under test that catches Exception cannot hide it.
        pytest.fail(f"a unit test {what}: {TIER_ADVICE}")

    return refuse


@pytest.fixture(autouse=True)
def _unit_tier_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess.Popen, "__init__", refused("started a subprocess"))
    monkeypatch.setattr(
        multiprocessing.process.BaseProcess, "start", refused("started a worker process")
    )
    monkeypatch.setattr(faster_whisper.WhisperModel, "__init__", refused("loaded the model"))
    connect = refused("connected to PostgreSQL")
    monkeypatch.setattr(psycopg, "connect", connect)
    monkeypatch.setattr(psycopg.Connection, "connect", classmethod(connect))
    monkeypatch.setattr(psycopg.AsyncConnection, "connect", classmethod(connect))


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """Here, a migrated SQLite file only: what runs on both kinds of database is integration."""
    return sqlite_url


@pytest.fixture
def postgres_url() -> NoReturn:
    pytest.fail(f"a unit test asked for PostgreSQL: {TIER_ADVICE}")


@pytest.fixture
def engine() -> NoReturn:
    pytest.fail(f"a unit test asked for the model: {TIER_ADVICE}")
