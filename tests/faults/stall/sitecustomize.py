"""Test only: a worker that stalls for good on one file, as a stuck decoder or a stalled disk
would, while its heartbeat thread goes on beating. Python imports this module at start-up when its
folder is on PYTHONPATH (the `site` module's sitecustomize hook); tests/faults/test_cancel.py and
bench/cancel.py put it there for the service they start, and so for its worker processes.

WT_STALL_ON names the file (its name, not its path) whose jobs stall. WT_STALL_AT says where:
"transcribe" (the default: before any output exists) or "staged" (its transcripts written to
temporary files, not yet published)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any


def _install(name: str, at: str) -> None:
    from whisper_transcriber.worker import job_runner

    forever = threading.Event()
    if at == "staged":
        stage_outputs = getattr(job_runner, "stage_outputs")  # noqa: B009 (not exported)

        def stalled_stage(transcript: Any, source: Path, *args: Any, **kwargs: Any) -> Any:
            staged = stage_outputs(transcript, source, *args, **kwargs)
            if source.name == name:
                forever.wait()
            return staged

        setattr(job_runner, "stage_outputs", stalled_stage)  # noqa: B010
    else:
        transcribe = job_runner._transcribe

        def stalled_transcribe(engine: Any, job: Any, *args: Any, **kwargs: Any) -> Any:
            if Path(job.source_path).name == name:
                forever.wait()
            return transcribe(engine, job, *args, **kwargs)

        job_runner._transcribe = stalled_transcribe


if os.environ.get("WT_STALL_ON"):
    _install(os.environ["WT_STALL_ON"], os.environ.get("WT_STALL_AT", "transcribe"))
