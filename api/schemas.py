"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from db.values import JobOptions, JobRecord, OutputFormat


class TranscribeRequest(BaseModel):
    path: str = Field(description="A file on the server, inside one of the allowed folders")
    language: str | None = None
    task: Literal["transcribe", "translate"] | None = None
    formats: list[OutputFormat] | None = None
    beam_size: int | None = Field(default=None, ge=1, le=20)
    vad_filter: bool | None = None
    word_timestamps: bool | None = None
    initial_prompt: str | None = None

    def options(self, defaults: JobOptions) -> JobOptions:
        """The service's defaults with what the request names laid over them."""
        given = self.model_dump(exclude={"path"}, exclude_none=True)
        return JobOptions.model_validate({**defaults.model_dump(), **given})


class JobOut(BaseModel):
    id: int
    status: str
    source_path: str
    origin: str
    options: JobOptions
    attempts: int
    worker_id: str | None
    progress: float
    error: str | None
    outputs: list[str]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    links: dict[str, str]

    @classmethod
    def from_record(cls, job: JobRecord) -> JobOut:
        return cls(
            id=job.id,
            status=job.status.value,
            source_path=job.source_path,
            origin=job.origin,
            options=job.options,
            attempts=job.attempts,
            worker_id=job.worker_id,
            progress=job.progress,
            error=job.error,
            outputs=list(job.outputs),
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            links={"self": f"/jobs/{job.id}"},
        )


class Health(BaseModel):
    status: Literal["ok"] = "ok"
