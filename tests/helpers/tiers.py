"""The test tiers, one folder of tests/ each; a test's tier is its marker (`pytest -m unit`)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.paths import TESTS

# unit: no model, no subprocess, no database server (tests/unit/conftest.py refuses them);
# integration: real SQLite and PostgreSQL, the model in this process, worker processes;
# e2e: the real CLI and service in subprocesses; faults: failures made on purpose;
# ui: a real browser.
TIERS = ("unit", "integration", "e2e", "faults", "ui")


def tier_of(path: Path) -> str | None:
    """The tier of a test module, from its folder; None outside the tier folders."""
    try:
        folder = path.resolve().relative_to(TESTS).parts[0]
    except (ValueError, IndexError):
        return None
    return folder if folder in TIERS else None
