"""The tiers: every test module lives in a tier's folder (and so carries its marker), and the
unit tier refuses what would make it slow: the model, subprocesses, a database server."""

from __future__ import annotations

import multiprocessing
import subprocess

import faster_whisper
import psycopg
import pytest

from tests.helpers.tiers import TESTS, TIERS
from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.worker.engine import ModelSpec


def test_every_test_module_is_in_a_tier_folder() -> None:
    outside = sorted(
        str(path.relative_to(TESTS))
        for path in TESTS.rglob("test_*.py")
        if path.relative_to(TESTS).parts[0] not in TIERS
    )
    assert outside == [], f"test modules outside the tier folders {TIERS}: {outside}"


def test_a_unit_test_carries_the_unit_marker(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("unit") is not None
    assert not any(request.node.get_closest_marker(tier) for tier in TIERS if tier != "unit")


def test_the_unit_tier_refuses_subprocesses() -> None:
    with pytest.raises(pytest.fail.Exception, match="started a subprocess"):
        subprocess.run(["true"], check=False)
    with pytest.raises(pytest.fail.Exception, match="started a worker process"):
        multiprocessing.get_context("spawn").Process(target=print).start()


def test_the_unit_tier_refuses_the_model() -> None:
    with pytest.raises(pytest.fail.Exception, match="loaded the model"):
        faster_whisper.WhisperModel(ModelSpec("tiny.en").name_or_path)


def test_the_unit_tier_refuses_postgresql(sqlite_url: str) -> None:
    with pytest.raises(pytest.fail.Exception, match="connected to PostgreSQL"):
        psycopg.connect("postgresql://root@127.0.0.1:5432/postgres")
    engine = make_engine("postgresql://root@127.0.0.1:5432/postgres")
    try:
        with pytest.raises(pytest.fail.Exception, match="connected to PostgreSQL"):
            engine.connect()
    finally:
        engine.dispose()
    assert sqlite_url.startswith("sqlite:///")  # a file is fine


def test_the_unit_tier_has_one_database_kind(database_url: str) -> None:
    assert database_url.startswith("sqlite:///")
