"""What the routes are given: the job store and the service's defaults."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from db.job_store import JobStore
from db.values import JobOptions


@dataclass(frozen=True)
class ApiContext:
    store: JobStore
    default_options: JobOptions
    allowed_roots: list[Path]
