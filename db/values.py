"""What the queue hands out: immutable job values, job options, and the retry policy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from db.models import JobStatus

OutputFormat = Literal["txt", "srt", "vtt", "json", "tsv"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("txt", "srt", "vtt", "json", "tsv")
Task = Literal["transcribe", "translate"]
TASKS: tuple[Task, ...] = ("transcribe", "translate")
# How a watcher learns of an inbox's changes: inotify events, or listing the folder every so often.
ObserverKind = Literal["inotify", "polling"]
DEFAULT_BEAM_SIZE = 5  # faster-whisper's own default
RETRY_BASE_DELAY_S = 30.0
RETRY_MAX_DELAY_S = 3600.0


class JobOptions(BaseModel):
    """How one file is transcribed and where its transcripts go; stored with the job as JSON."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    language: str | None = Field(default=None, description="ISO code; None detects the language")
    task: Task = "transcribe"
    beam_size: int = Field(default=DEFAULT_BEAM_SIZE, ge=1, le=20)
    vad_filter: bool = False
    word_timestamps: bool = False
    initial_prompt: str | None = None
    temperature: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="One sampling temperature; None: faster-whisper's fallback",
    )
    formats: tuple[str, ...] = OUTPUT_FORMATS
    output_dir: str | None = Field(default=None, description="None writes beside the source file")
    detect_only: bool = Field(
        default=False,
        description="Only detect the language (POST /detect-language): no segments, no files",
    )
    media_library: bool = Field(
        default=False,
        description="Name outputs <stem>.<language>.<format> (media-server sidecars) and skip a "
        "file that already has a subtitle in its language",
    )

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, formats: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [f for f in formats if f not in OUTPUT_FORMATS]
        if unknown:
            raise ValueError(
                f"unknown format {', '.join(unknown)}; choose from {', '.join(OUTPUT_FORMATS)}"
            )
        if not formats:
            raise ValueError("at least one output format is needed")
        return tuple(dict.fromkeys(formats))


@dataclass(frozen=True)
class JobRecord:
    id: int
    source_path: str
    source_size: int
    source_mtime_ns: int
    origin: str
    options: JobOptions
    status: JobStatus
    attempts: int
    max_attempts: int
    run_after: datetime
    worker_id: str | None
    lease_expires_at: datetime | None
    progress: float
    error: str | None
    outputs: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    move_on_done: str | None
    move_on_failure: str | None
    original_moved_to: str | None
    note: str | None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> JobRecord:
        values = dict(row)
        values["options"] = JobOptions.model_validate(values["options"])
        values["status"] = JobStatus(values["status"])
        values["outputs"] = tuple(values["outputs"] or ())
        return cls(**values)


@dataclass(frozen=True)
class JobQuery:
    """Which jobs a listing shows; every part optional. Newest first, paged by id."""

    status: JobStatus | None = None
    origin: str | None = None  # "inbox:NAME", "api", "upload" or "cli"
    since: datetime | None = None  # created at or after
    until: datetime | None = None  # created before
    text: str | None = None  # in the source path or the transcript, case-blind
    before_id: int | None = None  # the page after the one that ended at this id


@dataclass(frozen=True)
class TranscriptSummary:
    language: str
    duration: float


@dataclass(frozen=True)
class SearchHit:
    job_id: int
    start: float  # the matching segment's time in the audio, seconds
    end: float
    snippet: str  # the segment's text around the match, matches in <mark>...</mark>
    rank: float  # higher is better


@dataclass(frozen=True)
class QueueStats:
    jobs: dict[JobStatus, int]  # every status, zero included
    queue_depth: int  # queued and due now
    audio_s: float  # seconds of audio transcribed, all time
    processing_s: float  # seconds spent transcribing it

    @property
    def real_time_factor(self) -> float:
        """Audio seconds per processing second (per worker); 0 before the first transcript."""
        return self.audio_s / self.processing_s if self.processing_s else 0.0


@dataclass(frozen=True)
class InboxScan:
    """An inbox's latest scan, as the watcher that made it recorded it (any instance's)."""

    name: str
    path: str  # the inbox's resolved folder
    observer: ObserverKind  # as actually used: polling also when inotify could not watch it
    poll_interval_s: float | None  # for polling; None with inotify
    last_scan_at: datetime | None
    last_scan_new: int | None  # files no job knew, found by that scan
    scanned_by: str | None  # the watching instance, host:pid


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: attempt n failed -> wait base * 2**(n-1), capped; None means give up."""

    base_delay_s: float = RETRY_BASE_DELAY_S
    max_delay_s: float = RETRY_MAX_DELAY_S

    def next_run(self, attempt: int, max_attempts: int, now: datetime) -> datetime | None:
        if attempt >= max_attempts:
            return None
        delay = min(self.base_delay_s * 2 ** max(attempt - 1, 0), self.max_delay_s)
        return now + timedelta(seconds=delay)
