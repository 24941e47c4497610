"""Jobs for the terminal: the `jobs` table, `show`'s details, and both as JSON the way the HTTP
API shows them (api/schemas.JobOut), so that a script reads the same fields from either."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from whisper_transcriber.api.schemas import JobOut
from whisper_transcriber.db.values import JobRecord, TranscriptSummary, origin_inbox

_JOBS_JSON = TypeAdapter(list[JobOut])


def jobs_table(jobs: Sequence[JobRecord]) -> list[str]:
    """One line a job, newest first as given, under a header."""
    lines = [f"{'ID':>6}  {'STATUS':<9} {'TRIES':>5}  {'CREATED':<19}  SOURCE"]
    for job in jobs:
        created = job.created_at.strftime("%Y-%m-%d %H:%M:%S")
        line = f"{job.id:>6}  {job.status.value:<9} {job.attempts:>5}  {created:<19}  {job.source_path}"
        if job.error:
            line += f"  ({job.error})"
        lines.append(line)
    return lines


def jobs_json(jobs: Sequence[JobRecord], summaries: Mapping[int, TranscriptSummary]) -> str:
    """The jobs as one JSON array, each as GET /jobs lists it."""
    items = [JobOut.from_record(job, summaries.get(job.id)) for job in jobs]
    return _JOBS_JSON.dump_json(items, indent=2).decode()


def job_json(job: JobRecord, summary: TranscriptSummary | None) -> str:
    """One job as GET /jobs/{id} answers it."""
    return JobOut.from_record(job, summary).model_dump_json(indent=2)


def job_details(job: JobRecord, summary: TranscriptSummary | None) -> list[str]:
    """`show`: what the dashboard's job page says, as labelled lines."""
    inbox = origin_inbox(job.origin)
    came_from = f"inbox {inbox}" if inbox is not None else job.origin
    rows: list[tuple[str, str | list[str]]] = [
        ("status", job.status.value + (f" ({job.progress:.0%})" if job.progress else "")),
        ("source", job.source_path),
        ("from", came_from),
        ("attempts", f"{job.attempts} of {job.max_attempts}"),
        ("options", _options(job.options.model_dump())),
    ]
    if summary is not None:
        how = (
            "given"
            if job.options.language
            else f"detected, probability {summary.language_probability:.2f}"
        )
        rows.append(("language", f"{summary.language} ({how}), {summary.duration:.1f} s of audio"))
    if job.worker_id:
        rows.append(("worker", job.worker_id))
    rows.append(("outputs", list(job.outputs) or "none"))
    if job.error:
        rows.append(("error", job.error))
    if job.note:
        rows.append(("note", job.note))
    if job.original_moved_to:
        rows.append(("moved to", job.original_moved_to))
    rows.append(("created", _moment(job.created_at)))
    for label, moment in (
        ("started", job.started_at),
        ("finished", job.finished_at),
        ("upload removed", job.source_removed_at),
    ):
        if moment is not None:
            rows.append((label, _moment(moment)))
    width = max(len(label) for label, _ in rows)
    lines = [f"job {job.id}"]
    for label, value in rows:
        values = value if isinstance(value, list) else [value]
        for index, item in enumerate(values):
            lines.append(f"  {label if index == 0 else '':<{width}}  {item}")
    return lines


def _options(options: Mapping[str, Any]) -> str:
    """key=value for what is set (lists as a,b), in the options' own order."""
    shown = []
    for key, value in options.items():
        if value is None or (value is False and key in ("detect_only", "media_library")):
            continue
        if isinstance(value, list | tuple):
            value = ",".join(map(str, value))
        elif isinstance(value, bool):
            value = "on" if value else "off"
        shown.append(f"{key}={value}")
    return " ".join(shown)


def _moment(moment: datetime) -> str:
    return moment.isoformat(sep=" ", timespec="seconds")
