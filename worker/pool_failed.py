"""The worker pool's one failure that ends a command: the workers cannot run at all.

A module of its own, with nothing else in it, so that the CLI catches it without importing the
pool, which brings the model stack (tests/integration/test_import_rules.py)."""

from __future__ import annotations


class PoolFailed(Exception):
    """The workers cannot run at all; the message says why."""
