"""`transcribe --server URL`: the files go to a running service, which transcribes them.

Each distinct file (a file named twice is sent once) goes by its path when the service sees that
same file (it accepts the path, and its file there has the same size and modification time,
which it checks before recording anything: 412 otherwise), by upload otherwise. The jobs are
followed through /events; each finished job's transcripts are written into a local folder (two
files of one run with the same name take "talk.txt" and "talk (2).txt"), printed, or reported
where the service wrote them.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from whisper_transcriber.db.errors import UnstorablePath, check_storable
from whisper_transcriber.db.values import GUARDS, LANGUAGE_DETECTION, SUBTITLE_RULES
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
from whisper_transcriber.service.settings import SettingError, Settings
from whisper_transcriber.worker.names import printable

# The job options a client may set (api/schemas.py OptionsIn), as settings of the same names.
SENT_OPTIONS = (
    "language",
    "task",
    "formats",
    "beam_size",
    "vad_filter",
    "word_timestamps",
    "initial_prompt",
    "hotwords",
    "diarize",
    "num_speakers",
    "min_speakers",
    "max_speakers",
    *SUBTITLE_RULES,
    *LANGUAGE_DETECTION,
    *GUARDS,
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


def distinct(files: Sequence[Path]) -> list[Path]:
    """Each file once, in the order first named: a file named twice (or by a link) is one."""
    seen: set[str] = set()
    kept = []
    for file in files:
        key = os.path.realpath(file)
        if key not in seen:
            seen.add(key)
            kept.append(file)
    return kept


def submit(client: ServiceClient, file: Path, request: RemoteRequest) -> tuple[Job, str]:
    """The service's job for this file, and how it went ("path" or "upload"); Refused with the
    reason when the service refuses it (or the file cannot be read here), UnstorablePath for a
    name that is not valid UTF-8 (the service could not record it either).

    By path, the service checks that its file there is ours (the same size and modification
    time, db/identity.py looks_the_same) before it records anything, and answers 412 when it is
    another machine's file of the same path: then the file goes as an upload, and the service's
    own file stays free for its inbox."""
    options = {**request.options, **({"force": True} if request.force else {})}
    try:
        local = file.resolve()
    except (OSError, RuntimeError) as exc:  # a loop of links
        raise Refused(0, f"cannot read it here: {exc}") from exc
    check_storable(str(local))
    try:
        stat = local.stat()
    except OSError as exc:
        raise Refused(0, f"cannot read it here: {exc.strerror or exc}") from exc
    if not local.is_file():
        raise Refused(0, "not a file")
    if not request.always_upload:
        try:
            return client.submit_path(local, options, expected=stat), "path"
        except Refused as exc:
            if exc.status not in UPLOAD_INSTEAD and not _too_old_to_check(exc):
                raise  # bad options, too large a prompt: an upload would be refused the same
    try:
        return client.upload(local, options), "upload"
    except OSError as exc:
        raise Refused(0, f"cannot read it here: {exc.strerror or exc}") from exc


def _too_old_to_check(exc: Refused) -> bool:
    """A service from before expected_size: it refuses the fields (422), and cannot tell whether
    its file at the path is ours; an upload is sure."""
    return exc.status == 422 and "expected_" in exc.detail


def output_name(label: str, taken: set[str]) -> str:
    """The name (without extension) this run's transcripts of a file take in --output-dir: its
    stem, numbered past the names earlier files of the run took ("talk", "talk (2)"), as the
    local mode numbers its transcripts. Adds it to taken."""
    stem = Path(label).stem
    number = 1
    while (name := stem if number == 1 else f"{stem} ({number})").casefold() in taken:
        number += 1
    taken.add(name.casefold())
    return name


def transcribe(client: ServiceClient, request: RemoteRequest, shown: Display) -> list[Outcome]:
    """Submit every distinct file, follow their jobs until each has ended; an outcome per
    distinct file, in order."""
    client.check_service()
    files = distinct(request.files)
    labels: list[str] = []
    names: list[str] = []  # the output name of each file (numbered within the run)
    jobs: dict[int, Job] = {}
    file_jobs: list[int | Outcome] = []
    ways: dict[int, str] = {}  # each job: how its first file went
    taken: set[str] = set()
    for file in files:
        label = printable(str(file.absolute()))
        labels.append(label)
        names.append("")
        try:
            job, way = submit(client, file, request)
        except UnstorablePath as exc:
            outcome = Outcome(label, "refused", reason=str(exc))  # as the local mode says it
        except Refused as exc:
            outcome = Outcome(label, "refused", reason=f"{label}: {exc.detail}")
        else:
            job_id = int(job["id"])
            jobs.setdefault(job_id, job)
            ways.setdefault(job_id, way)
            file_jobs.append(job_id)
            names[-1] = output_name(label, taken)
            shown.add(job_id, label)
            continue
        shown.finished(outcome)
        file_jobs.append(outcome)
    if jobs:
        counts = Counter(ways.values())
        how = ", ".join(f"{count} by {way}" for way, count in sorted(counts.items()))
        shown.say(f"sent {len(jobs)} job(s) to {client.base_url} ({how})")
        if not all(is_final(job) for job in jobs.values()):
            _note_without_workers(client, shown)

    outcomes: dict[int, Outcome] = {}  # by the file's index

    def on_change(job: Job) -> None:
        job_id = int(job["id"])
        indexes = [index for index, item in enumerate(file_jobs) if item == job_id]
        if indexes[0] in outcomes:
            return
        if not is_final(job):
            shown.update(job_id, str(job["status"]), float(job.get("progress") or 0.0))
            return
        for index in indexes:  # files of one job (the same content uploaded by two names)
            outcomes[index] = _ended(client, job, labels[index], names[index], request)
            shown.finished(outcomes[index], job_id)

    for job in jobs.values():
        if is_final(job):  # already done with these options: nothing to wait for
            on_change(job)
    waiting = {job_id: job for job_id, job in jobs.items() if not is_final(job)}
    if waiting:
        follow(client, waiting, Following(on_change))
    return [
        item if isinstance(item, Outcome) else outcomes[index]
        for index, item in enumerate(file_jobs)
    ]


def _note_without_workers(client: ServiceClient, shown: Display) -> None:
    """A note when the service has no worker up: its jobs wait in its queue (workers on other
    machines may take them, so the command waits all the same)."""
    try:
        workers = client.status().get("workers")
    except SettingError:
        return  # following the jobs tells whether the service is there
    if isinstance(workers, dict) and workers.get("up"):
        return
    why = "runs no workers of its own" if workers is None else "has no worker up yet"
    shown.say(
        f"note: the service at {client.base_url} {why}: the job(s) wait in its queue until a "
        "worker takes them (one on another machine may); waiting"
    )


def _ended(
    client: ServiceClient, job: Job, label: str, name: str, request: RemoteRequest
) -> Outcome:
    """An ended job's outcome: its transcripts fetched and written (as name.FORMAT) or printed
    where asked."""
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
                    str(_write(request.output_dir, name, fmt, client, int(job["id"])))
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
    """One transcript into the folder, whole or not at all (a temporary file renamed); a file
    of that name from before the run is replaced."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{stem}.{fmt}"
    partial = folder / f".{stem}.{fmt}.{os.getpid()}.part"
    try:
        partial.write_bytes(client.transcript(job_id, fmt))
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target.absolute()
