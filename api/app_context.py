"""What the routes are given: the job store, the service's defaults, and its workers' state."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from db.job_store import JobStore
from db.values import JobOptions

DEFAULT_MAX_UPLOAD_BYTES = 2 * 1024**3


class WorkerStatus(Protocol):
    """The worker pool as the API sees it (WorkerPool in worker/supervisor.py)."""

    size: int
    restarts: int
    recycles: int

    def ready(self) -> int: ...

    def busy(self) -> int: ...


@dataclass(frozen=True)
class ApiContext:
    store: JobStore
    default_options: JobOptions
    allowed_roots: list[Path]
    uploads_dir: Path = Path("data/uploads")
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    workers: WorkerStatus | None = None  # None: this process runs no workers (api role)
    api_key: str | None = None  # every endpoint but /health then asks for it
    sync_wait_s: float = 4 * 3600.0  # how long /asr and friends wait for their job
