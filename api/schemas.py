"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from whisper_transcriber.api.app_context import WorkerStatus
from whisper_transcriber.api.callbacks import CALLBACK_FIELDS, CallbackFields
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.transcript import Transcript
from whisper_transcriber.db.values import (
    MAX_SPEAKERS,
    OUTPUT_FORMATS,
    CompressionRatioThreshold,
    ExactSpeakers,
    HallucinationSilenceThreshold,
    InboxScan,
    JobOptions,
    JobRecord,
    LanguageDetectionSegments,
    LanguageDetectionThreshold,
    LogProbThreshold,
    MaxSpeakers,
    MinSpeakers,
    NoRepeatNgramSize,
    NoSpeechThreshold,
    ObserverKind,
    OutputFormat,
    QueueStats,
    RepetitionPenalty,
    SubtitleCps,
    SubtitleLineChars,
    SubtitleLines,
    SubtitleMaxSeconds,
    SubtitleMinSeconds,
    SubtitleRulesOn,
    Task,
    TranscriptSummary,
    VadMinSilenceMs,
    VadMinSpeechMs,
    VadSpeechPadMs,
    VadThreshold,
    origin_inbox,
    with_speaker_counts,
)
from whisper_transcriber.db.worker_registry import WorkerInfo, WorkerRole, WorkerState
from whisper_transcriber.worker.languages import Language, Languages


class OptionsIn(CallbackFields):
    """Job options a client may set; what it leaves out comes from the service's defaults. The
    callback fields are not options: the same work asked for with another callback is the
    same job (which then has both)."""

    model_config = ConfigDict(extra="forbid")

    language: Language = Field(
        default=None,
        description="Whisper's code (en, de, yue; GET /options lists them); unset detects it",
    )
    model: str | None = Field(
        default=None,
        max_length=100,
        description="A name GET /models lists; unset: the default model",
    )
    task: Task | None = None
    formats: list[OutputFormat] | None = None
    beam_size: int | None = Field(default=None, ge=1, le=20)
    vad_filter: bool | None = None
    word_timestamps: bool | None = None
    initial_prompt: str | None = None
    hotwords: str | None = Field(
        default=None, description='Terms the model should expect: "Kubernetes, Siobhan Nguyen"'
    )
    diarize: bool | None = Field(
        default=None, description="Label who speaks each segment: Speaker 1, Speaker 2, ..."
    )
    num_speakers: ExactSpeakers = None
    min_speakers: MinSpeakers = None
    max_speakers: MaxSpeakers = None
    subtitle_rules: SubtitleRulesOn | None = None
    subtitle_line_chars: SubtitleLineChars | None = None
    subtitle_lines: SubtitleLines | None = None
    subtitle_max_s: SubtitleMaxSeconds | None = None
    subtitle_min_s: SubtitleMinSeconds | None = None
    subtitle_cps: SubtitleCps | None = None
    compression_ratio_threshold: CompressionRatioThreshold | None = None
    log_prob_threshold: LogProbThreshold | None = None
    no_speech_threshold: NoSpeechThreshold | None = None
    hallucination_silence_threshold: HallucinationSilenceThreshold | None = None
    repetition_penalty: RepetitionPenalty | None = None
    no_repeat_ngram_size: NoRepeatNgramSize | None = None
    vad_threshold: VadThreshold | None = None
    vad_min_speech_ms: VadMinSpeechMs | None = None
    vad_min_silence_ms: VadMinSilenceMs | None = None
    vad_speech_pad_ms: VadSpeechPadMs | None = None
    language_detection_segments: LanguageDetectionSegments | None = None
    language_detection_threshold: LanguageDetectionThreshold | None = None
    expected_languages: Languages = Field(
        default=None,
        description="Language detection chooses among these (GET /options lists the codes)",
    )
    force: bool = Field(
        default=False,
        description="Queue a new job even if the same file with the same options has one",
    )

    def options(self, defaults: JobOptions) -> JobOptions:
        """The service's defaults with what the request names laid over them; ValidationError
        when they do not agree (speaker counts without diarize)."""
        given = self.model_dump(
            exclude={"path", "force", "expected_size", "expected_mtime_ns", *CALLBACK_FIELDS},
            exclude_none=True,
        )
        if "expected_languages" in given and "language" not in given:
            given["language"] = None  # detected among these, not the service's language
        return JobOptions.model_validate(with_speaker_counts(defaults.model_dump(), given))

    @classmethod
    def from_form(cls, fields: dict[str, str]) -> OptionsIn:
        """Form fields are text: formats come as "srt,vtt"; ValidationError as for JSON."""
        values: dict[str, object] = {name: value for name, value in fields.items() if value != ""}
        for listed in ("formats", "expected_languages", "callback_events"):
            if listed in values:
                values[listed] = [f.strip() for f in fields[listed].split(",") if f.strip()]
        return cls.model_validate(values)


class TranscribeRequest(OptionsIn):
    path: str = Field(description="A file on the server, inside one of the allowed folders")
    expected_size: int | None = Field(
        default=None,
        ge=0,
        description="The size in bytes the client's file at this path has: when the server's "
        "file differs, the answer is 412 and no job is created or changed (a client on another "
        "machine with the same path then uploads its file instead)",
    )
    expected_mtime_ns: int | None = Field(
        default=None,
        description="The modification time of the client's file, in nanoseconds since the "
        "epoch: when the server's file differs (compared at the coarser resolution of the two), "
        "the answer is 412 and no job is created or changed",
    )


class JobOut(BaseModel):
    id: int
    status: JobStatus
    source_path: str
    source_size: int = Field(description="The source's size in bytes when the job was queued")
    source_mtime_ns: int = Field(
        description="The source's modification time when the job was queued, in nanoseconds "
        "since the epoch (a client compares it with its own copy's)"
    )
    origin: str = Field(
        description="Where the job came from: inbox:NAME, api (a path on the server), upload or "
        "cli; source and inbox are read from it"
    )
    source: str = Field(description="As shown: the inbox's name, or api, upload or cli (origin)")
    inbox: str | None = Field(description="The inbox's name, for jobs from an inbox (origin)")
    options: JobOptions
    attempts: int
    max_attempts: int
    worker_id: str | None
    progress: float = Field(description="Fraction of the audio done, 0 to 1")
    error: str | None = Field(description="Why the last attempt failed")
    note: str | None = Field(
        description="Why a job ended without new transcripts, or without some of them"
    )
    outputs: list[str] = Field(
        description="Transcript files written (those beside an upload went with it once "
        "source_removed_at is set)"
    )
    language: str | None = Field(description="Detected or given language, once transcribed")
    language_probability: float | None = Field(
        description="How sure the detection was of the language, 0 to 1 (1 when it was given), "
        "once transcribed"
    )
    duration: float | None = Field(description="Seconds of audio, once transcribed")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    source_removed_at: datetime | None = Field(
        description="When the upload retention (upload_retention_s) removed the uploaded file and "
        "its folder; the transcript stays readable at /jobs/{id}/transcript"
    )
    links: dict[str, str] = Field(description="self, and transcript.FORMAT once done")

    @classmethod
    def from_record(cls, job: JobRecord, summary: TranscriptSummary | None = None) -> JobOut:
        links = {"self": f"/jobs/{job.id}"}
        if summary is not None:
            for fmt in OUTPUT_FORMATS:
                links[f"transcript.{fmt}"] = f"/jobs/{job.id}/transcript?format={fmt}"
        inbox = origin_inbox(job.origin)
        return cls(
            id=job.id,
            status=job.status,
            source_path=job.source_path,
            source_size=job.source_size,
            source_mtime_ns=job.source_mtime_ns,
            source=inbox or job.origin,
            inbox=inbox,
            origin=job.origin,
            options=job.options,
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            worker_id=job.worker_id,
            progress=job.progress,
            error=job.error,
            note=job.note,
            outputs=list(job.outputs),
            language=summary.language if summary else None,
            language_probability=summary.language_probability if summary else None,
            duration=summary.duration if summary else None,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            source_removed_at=job.source_removed_at,
            links=links,
        )


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(description="Pass as cursor for the next (older) page")


class ErrorOut(BaseModel):
    detail: str = Field(description="What went wrong, in words")


class ModelOut(BaseModel):
    name: str = Field(description="What a job, an inbox or a request names it by")
    model: str = Field(description="Its weights: bundled, a size name or a folder")
    compute_type: str
    default: bool = Field(description="The model jobs get when they name none")
    loaded_by: int = Field(description="Live workers that hold it loaded now (every instance)")


class SearchHitOut(BaseModel):
    job_id: int
    source_path: str
    start: float = Field(description="Where the matching segment starts in the audio, seconds")
    end: float
    snippet: str = Field(description="HTML-escaped text around the match; matches in <mark>")
    rank: float = Field(description="Higher is a better match")
    speaker: str | None = Field(
        default=None, description="Who says it (its name, once given), with speaker labels"
    )
    links: dict[str, str]


class SpeakerNamesIn(BaseModel):
    """Names for a job's speakers, by label; an empty name gives the label back."""

    model_config = ConfigDict(extra="forbid")

    names: dict[str, str] = Field(
        max_length=MAX_SPEAKERS, description='{"Speaker 1": "Ada", "Speaker 2": "Grace"}'
    )


class SpeakerOut(BaseModel):
    label: str = Field(description="Speaker 1, Speaker 2, ...: as the segments say")
    name: str = Field(description="The name given, else the label")


class SpeakersOut(BaseModel):
    speakers: list[SpeakerOut] = Field(description="In the order they first speak")
    files_pending: bool = Field(
        description="Whether the files the job wrote still show other names than these: an "
        "instance with the work or watch role rewrites them within seconds"
    )

    @classmethod
    def of(cls, transcript: Transcript, files_pending: bool) -> SpeakersOut:
        names = transcript.speaker_names
        return cls(
            speakers=[
                SpeakerOut(label=label, name=names.get(label, label))
                for label in transcript.speakers
            ],
            files_pending=files_pending,
        )


class SearchPage(BaseModel):
    items: list[SearchHitOut]


class DetectedLanguage(BaseModel):
    """As whisper-asr-webservice answers POST /detect-language."""

    detected_language: str = Field(description="The language's name, lower case: english")
    language_code: str = Field(description="Whisper's code: en")
    confidence: float


class Readiness(BaseModel):
    ready: bool
    problems: list[str] = Field(description="Why not ready; empty when ready")


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class WorkersOut(BaseModel):
    size: int = Field(description="Worker processes this instance runs")
    up: int = Field(description="Started, model loaded")
    busy: int = Field(description="Running a job")
    idle: int = Field(description="Up and waiting for a job")
    restarts: int = Field(
        description="Replaced after dying, timing out, or not stopping when its job was cancelled"
    )
    recycles: int = Field(description="Replaced by design (job count or memory ceiling)")

    @classmethod
    def of(cls, pool: WorkerStatus) -> WorkersOut:
        up, busy = pool.ready(), pool.busy()
        return cls(
            size=pool.size,
            up=up,
            busy=busy,
            idle=max(up - busy, 0),
            restarts=pool.restarts,
            recycles=pool.recycles,
        )


class RegisteredWorkerOut(BaseModel):
    """A worker process as the worker registry knows it, on whichever machine it runs."""

    id: str = Field(description="host:token:pid, as jobs' worker_id name it")
    host: str
    pid: int
    role: WorkerRole = Field(description="service: a service's pool; command: a `transcribe`'s own")
    state: WorkerState
    job_id: int | None = Field(description="The job it runs, when busy")
    started_at: datetime
    heartbeat_at: datetime
    heartbeat_age_s: float = Field(description="Seconds since its last heartbeat")
    stale: bool = Field(description="Silent longer than worker_stale_after_s: hung or gone")

    @classmethod
    def of(cls, worker: WorkerInfo) -> RegisteredWorkerOut:
        return cls.model_validate(worker, from_attributes=True)


class InstanceOut(BaseModel):
    """One instance's registered workers (the pools of every machine on this database)."""

    name: str = Field(description="instance_name, or the host's name")
    live: int = Field(description="Workers beating")
    stale: int = Field(description="Workers silent longer than worker_stale_after_s")
    workers: list[RegisteredWorkerOut]

    @classmethod
    def group(cls, workers: list[WorkerInfo]) -> list[InstanceOut]:
        by_instance: dict[str, list[WorkerInfo]] = {}
        for worker in workers:
            by_instance.setdefault(worker.instance, []).append(worker)
        return [
            cls(
                name=name,
                live=sum(1 for worker in members if worker.live),
                stale=sum(1 for worker in members if worker.stale),
                workers=[RegisteredWorkerOut.of(worker) for worker in members],
            )
            for name, members in sorted(by_instance.items())
        ]


class InboxOut(BaseModel):
    name: str
    path: str = Field(description="The inbox's folder")
    observer: ObserverKind = Field(
        description="How its changes are seen, as used: native (inotify) events, or polling "
        "(also when native events could not watch it)"
    )
    poll_interval_s: float | None = Field(description="Seconds between listings, when polling")
    last_scan_at: datetime | None
    last_scan_new: int | None = Field(description="Files no job knew, found by the last scan")
    scanned_by: str | None = Field(description="The instance that scanned it, host:pid")

    @classmethod
    def from_scan(cls, scan: InboxScan) -> InboxOut:
        return cls.model_validate(scan, from_attributes=True)


class StatusOut(BaseModel):
    """The service at a glance; jobs and inboxes from the database, whichever instance answers."""

    workers: WorkersOut | None = Field(description="This instance's pool; null when it runs none")
    instances: list[InstanceOut] = Field(
        description="Every instance's registered workers (stopped ones left out), by name"
    )
    jobs: dict[JobStatus, int] = Field(description="Jobs in the database by status")
    queue_depth: int = Field(description="Queued jobs that are due now")
    audio_s: float = Field(description="Seconds of audio transcribed, all time")
    processing_s: float = Field(description="Seconds spent transcribing, claim to transcript")
    real_time_factor: float = Field(description="audio_s / processing_s (per worker); 0 if none")
    inboxes: list[InboxOut] = Field(description="Each inbox's latest scan, by name")

    @classmethod
    def of(
        cls,
        stats: QueueStats,
        scans: list[InboxScan],
        workers: WorkerStatus | None,
        registered: list[WorkerInfo],
    ) -> StatusOut:
        return cls(
            workers=WorkersOut.of(workers) if workers is not None else None,
            instances=InstanceOut.group(registered),
            jobs=stats.jobs,
            queue_depth=stats.queue_depth,
            audio_s=stats.audio_s,
            processing_s=stats.processing_s,
            real_time_factor=stats.real_time_factor,
            inboxes=[InboxOut.from_scan(scan) for scan in scans],
        )


class OptionsOut(BaseModel):
    """What a submit form offers."""

    defaults: JobOptions = Field(description="The service's default job options")
    formats: list[OutputFormat]
    tasks: list[Task]
    languages: dict[str, str] = Field(description="Whisper's language codes and their names")
    models: list[str] = Field(description="The models a job may name, default first")
    max_upload_bytes: int = Field(description="The largest upload POST /transcribe takes")


class AudioLinkOut(BaseModel):
    url: str = Field(description="GET it without the API key (an <audio src>) until expires_at")
    expires_at: datetime | None = Field(description="null when no API key is set")
