"""The wheel built from this checkout installs one import name and carries every resource the
service opens at run time (migrations, the dashboard). .ci/wheel_smoke.py installs it and runs
the commands from an unrelated folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers.paths import REPOSITORY

REPO = REPOSITORY


# What a build leaves in the tree it builds (and what no wheel needs): never copied.
NOT_BUILT_FROM = {".git", ".venv", "build", "dist", "data", "inbox", ".hypothesis", "node_modules"}


def _not_copied(folder: str, names: list[str]) -> set[str]:
    top = Path(folder).resolve() == REPO
    return {
        name
        for name in names
        if name == "__pycache__"
        or name.endswith((".egg-info", "_cache"))
        or (top and name in NOT_BUILT_FROM)
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """Built from a copy of the checkout: setuptools writes build/ and *.egg-info into the tree
    it builds, which must not be the checkout that other test processes are reading."""
    checkout = tmp_path_factory.mktemp("checkout") / "whisper-transcriber"
    shutil.copytree(REPO, checkout, symlinks=True, ignore=_not_copied)
    into = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(into), str(checkout)],
        check=True,
        capture_output=True,
    )
    [built] = into.glob("whisper_transcriber-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_installs_one_import_name(wheel: zipfile.ZipFile) -> None:
    top = {name.split("/", 1)[0] for name in wheel.namelist()}
    assert {name for name in top if not name.endswith(".dist-info")} == {"whisper_transcriber"}
    [top_level] = [name for name in wheel.namelist() if name.endswith("top_level.txt")]
    assert wheel.read(top_level).decode().split() == ["whisper_transcriber"]


def test_the_wheel_carries_the_migrations_and_the_dashboard(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    resources = {
        "alembic": "whisper_transcriber/migrations",
        "api/ui": "whisper_transcriber/api/ui",
    }
    for folder, packaged in resources.items():
        tracked = subprocess.run(
            ["git", "ls-files", folder], cwd=REPO, check=True, capture_output=True, text=True
        ).stdout.split()
        assert tracked, folder
        for path in tracked:
            assert path.replace(folder, packaged, 1) in names, path


def test_the_command_points_into_the_package(wheel: zipfile.ZipFile) -> None:
    [entry_points] = [name for name in wheel.namelist() if name.endswith("entry_points.txt")]
    assert (
        "whisper-transcriber = whisper_transcriber.service.cli:main"
        in wheel.read(entry_points).decode()
    )
