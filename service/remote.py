"""`transcribe --server URL`: the files go to a running service, which transcribes them.

Each file goes by its path when the service sees that same file (it accepts the path and its job
is for a file of the same size and modification time), by upload otherwise. The jobs are followed
through /events; each finished job's transcripts are written into a local folder, printed, or
reported where the service wrote them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from whisper_transcriber.service.client import (
    UPLOAD_INSTEAD,
    Following,
    Job,
    Refused,
    ServiceClient,
    follow,
    is_final,
)
from whisper_transcriber.service.progress import Display, Outcome
from whisper_transcriber.service.settings import Settings

# The job options a client may set (api/schemas.py OptionsIn), as settings of the same names.
SENT_OPTIONS = (
    "language",
    "task",
    "formats",
    "beam_size",
    "vad_filter",
    "word_timestamps",
    "initial_prompt",
)


@dataclass(frozen=True)
class RemoteRequest:
    files: Sequence[Path]
    options: Mapping[str, Any]  # sent with each file; what it leaves out is the service's default
    force: bool = False
    always_upload: bool = False
    output_dir: Path | None = None  # write the transcripts here
    print_text: bool = False  # fetch the txt transcript for printing


def options_from(settings: Settings) -> dict[str, Any]:
    """The job options this run sets (flags, environment, config file); the rest are left to the
    service's own defaults."""
    return {
        name: getattr(settings, name)
        for name in SENT_OPTIONS
        if name in settings.model_fields_set and getattr(settings, name) is not None
    }


def same_version(job: Job, local: os.stat_result) -> bool:
    """Whether the service's job is for a file like ours: the same size and modification time
    (compared at the coarser of the two clocks' resolutions: a network share may keep less)."""
    size, mtime_ns = job.get("source_size"), job.get("source_mtime_ns")
    if not isinstance(size, int) or not isinstance(mtime_ns, int):
        return False  # a service too old to say: it may be another machine's file
    if size != local.st_size:
        return False
    step = max(_resolution(mtime_ns), _resolution(local.st_mtime_ns))
    return mtime_ns // step == local.st_mtime_ns // step


def _resolution(ns: int) -> int:
    for step in (10**9, 10**6, 10**3):
        if ns % step == 0:
            return step
    return 1


def submit(client: ServiceClient, file: Path, request: RemoteRequest) -> tuple[Job, str]:
    """The service's job for this file, and how it went ("path" or "upload"); Refused with the
    reason when the service refuses it (or the file cannot be read here)."""
    options = {**request.options, **({"force": True} if request.force else {})}
    try:
        local = file.resolve()
        stat = local.stat()
    except OSError as exc:
        raise Refused(0, f"cannot read it here: {exc.strerror or exc}") from exc
    if not local.is_file():
        raise Refused(0, "not a file")
    if not request.always_upload:
        try:
            job = client.submit_path(local, options)
        except Refused as exc:
            if exc.status not in UPLOAD_INSTEAD:
                raise  # bad options, too large a prompt: an upload would be refused the same
        else:
            if same_version(job, stat):
                return job, "path"
            if job.get("_created") and not is_final(job):
                client.cancel(int(job["id"]))  # a job for the server's own, other file: not ours
    try:
        return client.upload(local, options), "upload"
    except OSError as exc:
        raise Refused(0, f"cannot read it here: {exc.strerror or exc}") from exc


def transcribe(client: ServiceClient, request: RemoteRequest, shown: Display) -> list[Outcome]:
    """Submit every file, follow their jobs until each has ended; an outcome per file, in order."""
    labels: list[str] = []
    jobs: dict[int, Job] = {}
    file_jobs: list[int | Outcome] = []
    ways: dict[str, int] = {}
    for file in request.files:
        label = str(file.absolute())
        labels.append(label)
        try:
            job, way = submit(client, file, request)
        except Refused as exc:
            outcome = Outcome(label, "refused", reason=f"{label}: {exc.detail}")
            shown.finished(outcome)
            file_jobs.append(outcome)
            continue
        ways[way] = ways.get(way, 0) + 1
        job_id = int(job["id"])
        jobs[job_id] = job
        file_jobs.append(job_id)
        shown.add(job_id, label)
    if jobs:
        how = ", ".join(f"{count} by {way}" for way, count in sorted(ways.items()))
        shown.say(f"sent {len(jobs)} job(s) to {client.base_url} ({how})")

    outcomes: dict[int, Outcome] = {}

    def on_change(job: Job) -> None:
        job_id = int(job["id"])
        if job_id in outcomes:
            return
        if not is_final(job):
            shown.update(job_id, str(job["status"]), float(job.get("progress") or 0.0))
            return
        label = labels[file_jobs.index(job_id)]
        outcomes[job_id] = _ended(client, job, label, request)
        shown.finished(outcomes[job_id], job_id)

    for job in jobs.values():
        if is_final(job):  # already done with these options: nothing to wait for
            on_change(job)
    if any(job_id not in outcomes for job_id in jobs):
        follow(client, {i: j for i, j in jobs.items() if i not in outcomes}, Following(on_change))

    results = []
    for index, item in enumerate(file_jobs):
        if isinstance(item, Outcome):
            results.append(item)
        elif outcomes[item].label == labels[index]:
            results.append(outcomes[item])
        else:  # the same file named twice: one job
            results.append(Outcome(labels[index], **_fields(outcomes[item])))
    return results


def _fields(outcome: Outcome) -> dict[str, Any]:
    return {
        "status": outcome.status,
        "reason": outcome.reason,
        "outputs": outcome.outputs,
        "note": outcome.note,
        "text": outcome.text,
    }


def _ended(client: ServiceClient, job: Job, label: str, request: RemoteRequest) -> Outcome:
    """An ended job's outcome: its transcripts fetched and written or printed where asked."""
    status = str(job["status"])
    if status != "done":
        return Outcome(label, status, reason=job.get("error") or status)
    outputs = tuple(str(path) for path in job.get("outputs") or ())
    note = job.get("note")
    text = None
    has_transcript = "transcript.txt" in (job.get("links") or {})
    try:
        if request.output_dir is not None:
            outputs = ()
            if has_transcript:
                formats = request.options.get("formats") or job["options"]["formats"]
                outputs = tuple(
                    str(_write(request.output_dir, Path(label).stem, fmt, client, int(job["id"])))
                    for fmt in formats
                )
        if request.print_text and has_transcript:
            text = client.transcript(int(job["id"]), "txt").decode("utf-8")
    except Refused as exc:
        return Outcome(label, "failed", reason=f"cannot fetch its transcript: {exc.detail}")
    except OSError as exc:
        return Outcome(label, "failed", reason=f"cannot write its transcript: {exc}")
    return Outcome(label, "done", outputs=outputs, note=note, text=text)


def _write(folder: Path, stem: str, fmt: str, client: ServiceClient, job_id: int) -> Path:
    """One transcript into the folder, whole or not at all (a temporary file renamed)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{stem}.{fmt}"
    partial = folder / f".{stem}.{fmt}.{os.getpid()}.part"
    try:
        partial.write_bytes(client.transcript(job_id, fmt))
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target.absolute()
