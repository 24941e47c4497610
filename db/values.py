"""What the queue hands out: immutable job values, job options, and the retry policy."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, cast, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from whisper_transcriber.db.models import JobStatus

# The transcript formats, stated once: the settings, the inbox options, the API, the CLI and the
# writers (worker/outputs.py) take this type, and check what they are given with known_formats.
OutputFormat = Literal["txt", "srt", "vtt", "json", "tsv"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = get_args(OutputFormat)
Task = Literal["transcribe", "translate"]
TASKS: tuple[Task, ...] = ("transcribe", "translate")
# How a watcher learns of an inbox's changes: the system's own events (inotify on Linux), or
# listing the folder every so often. One spelling for the setting, the inbox_scans rows, the API
# and the dashboard.
ObserverKind = Literal["native", "polling"]
# Where a job came from, stored in jobs.origin (the one statement of it): an inbox
# ("inbox:NAME"), the API given a path on the server, an upload, or the command line.
API_ORIGIN = "api"
UPLOAD_ORIGIN = "upload"
CLI_ORIGIN = "cli"
INBOX_ORIGIN_PREFIX = "inbox:"
DEFAULT_BEAM_SIZE = 5  # faster-whisper's own default
# The name of the model the service is configured with (the model setting); a job's options
# name it as None, so that naming it or not is the same work.
DEFAULT_MODEL_NAME = "default"
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
# Names that mean the default model: "whisper-1" is what OpenAI's clients send.
RESERVED_MODEL_NAMES = (DEFAULT_MODEL_NAME, "whisper-1")
# Speaker labels: the most speakers a job may ask for (a panel, a classroom; beyond, the voice
# prints of one file no longer tell people apart).
MAX_SPEAKERS = 20
# Whisper reads at most 223 tokens of a prompt (half its 448-token text window, less one) and
# faster-whisper silently drops the beginning of a longer one (of hotwords, the end). 223 tokens
# of English prose, the language that packs the most characters into a token, are about 1,000
# characters (4 to 4.7 a token, checked in tests/faults/test_request_limits.py): 2,000 holds
# anything the model can use.
MAX_PROMPT_CHARS = 2000
RETRY_BASE_DELAY_S = 30.0
RETRY_MAX_DELAY_S = 3600.0

log = logging.getLogger(__name__)


def inbox_origin(name: str) -> str:
    """The origin of the jobs of the inbox of this name."""
    return f"{INBOX_ORIGIN_PREFIX}{name}"


def origin_inbox(origin: str) -> str | None:
    """The inbox's name in an inbox job's origin; None for a job from elsewhere."""
    if not origin.startswith(INBOX_ORIGIN_PREFIX):
        return None
    return origin.removeprefix(INBOX_ORIGIN_PREFIX)


def known_formats(formats: Iterable[str]) -> tuple[OutputFormat, ...]:
    """Output formats as asked for, in any case (SRT is srt), each once in the order given: the
    one check of them. ValueError naming every unknown one and the choices, or when none is."""
    names = [name.lower() for name in formats]
    unknown = [name for name in names if name not in OUTPUT_FORMATS]
    if unknown:
        raise ValueError(
            f"unknown format {', '.join(map(repr, unknown))}; "
            f"choose from {', '.join(OUTPUT_FORMATS)}"
        )
    if not names:
        raise ValueError("at least one output format is needed")
    return cast(tuple[OutputFormat, ...], tuple(dict.fromkeys(names)))


def known_format(name: str) -> OutputFormat:
    """One output format as asked for (known_formats): ValueError when it is none."""
    return known_formats([name])[0]


# Sets of unknown stored option keys already logged (once each per process).
_unknown_options_seen: set[frozenset[str]] = set()


SPEAKER_COUNTS = ("num_speakers", "min_speakers", "max_speakers")
# The three counts as job options, settings and request fields declare them.
ExactSpeakers = Annotated[
    int | None, Field(ge=1, le=MAX_SPEAKERS, description="With diarize: exactly this many speak")
]
MinSpeakers = Annotated[
    int | None, Field(ge=1, le=MAX_SPEAKERS, description="With diarize: at least this many speak")
]
MaxSpeakers = Annotated[
    int | None, Field(ge=1, le=MAX_SPEAKERS, description="With diarize: at most this many speak")
]


# Subtitle rules (worker/subtitles.py): srt and vtt cues of at most SUBTITLE_LINE_CHARS characters
# a line, SUBTITLE_LINES lines, SUBTITLE_MAX_S seconds on screen, at least SUBTITLE_MIN_S where
# there is time, read at SUBTITLE_CPS characters a second at most: common broadcast and streaming
# guidelines for adults (Netflix's English: 42 characters, 2 lines, 7 s, 20 characters a second).
SUBTITLE_LINE_CHARS = 42
SUBTITLE_LINES = 2
SUBTITLE_MAX_S = 7.0
SUBTITLE_MIN_S = 1.0
SUBTITLE_CPS = 20.0
SUBTITLE_RULES = (
    "subtitle_rules",
    "subtitle_line_chars",
    "subtitle_lines",
    "subtitle_max_s",
    "subtitle_min_s",
    "subtitle_cps",
)
# The rules as job options, settings and request fields declare them.
SubtitleRulesOn = Annotated[
    bool,
    Field(
        description="srt and vtt cues made for reading (the subtitle_* rules), cut at sentence "
        "and clause ends on word times; off: one cue per segment of the model"
    ),
]
SubtitleLineChars = Annotated[
    int,
    Field(
        ge=10,
        le=200,
        description="Subtitles: the most characters on a line (a Chinese or Japanese one counts two)",
    ),
]
SubtitleLines = Annotated[int, Field(ge=1, le=4, description="Subtitles: the most lines in a cue")]
SubtitleMaxSeconds = Annotated[
    float, Field(gt=0, le=60, description="Subtitles: the longest a cue stays on screen, seconds")
]
SubtitleMinSeconds = Annotated[
    float,
    Field(
        ge=0,
        le=10,
        description="Subtitles: the shortest a cue stays on screen where the next one leaves time",
    ),
]
SubtitleCps = Annotated[
    float,
    Field(ge=1, le=100, description="Subtitles: the fastest reading speed, characters a second"),
]


# Language detection (worker/language_detection.py): from up to LANGUAGE_DETECTION_SEGMENTS 30 s
# windows of speech; a window whose best language is surer than LANGUAGE_DETECTION_THRESHOLD
# decides. Chosen by bench/language_detection.py (docs/benchmarks.md, "Language detection").
LANGUAGE_DETECTION_SEGMENTS = 1
LANGUAGE_DETECTION_THRESHOLD = 0.5
LANGUAGE_DETECTION = (
    "language_detection_segments",
    "language_detection_threshold",
    "expected_languages",
)
LanguageDetectionSegments = Annotated[
    int,
    Field(
        ge=1,
        le=10,
        description="Language detection: the most 30 s windows of speech it listens to",
    ),
]
LanguageDetectionThreshold = Annotated[
    float,
    Field(
        ge=0,
        le=1,
        description="Language detection: a window whose best language is surer than this decides; "
        "otherwise the best over all windows",
    ),
]


# Guards against hallucination: faster-whisper's own options, with its own defaults (1.2), so that
# a job that sets none transcribes exactly as faster-whisper does. tests/unit/test_guards.py checks
# the defaults against faster-whisper's signature.
GUARDS = (
    "compression_ratio_threshold",
    "log_prob_threshold",
    "no_speech_threshold",
    "hallucination_silence_threshold",
    "repetition_penalty",
    "no_repeat_ngram_size",
    "vad_threshold",
    "vad_min_speech_ms",
    "vad_min_silence_ms",
    "vad_speech_pad_ms",
)
GUARD_DEFAULTS: dict[str, Any] = {
    "compression_ratio_threshold": 2.4,
    "log_prob_threshold": -1.0,
    "no_speech_threshold": 0.6,
    "hallucination_silence_threshold": 0.0,
    "repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "vad_threshold": 0.5,
    "vad_min_speech_ms": 0,
    "vad_min_silence_ms": 2000,
    "vad_speech_pad_ms": 400,
}
# The VAD's parameters (with vad_filter), as faster-whisper's VadOptions names them.
VAD_PARAMETERS = {
    "vad_threshold": "threshold",
    "vad_min_speech_ms": "min_speech_duration_ms",
    "vad_min_silence_ms": "min_silence_duration_ms",
    "vad_speech_pad_ms": "speech_pad_ms",
}
CompressionRatioThreshold = Annotated[
    float,
    Field(
        gt=0,
        le=100,
        description="Guard: a window whose text compresses more than this (repeats itself) is "
        "decoded again hotter",
    ),
]
LogProbThreshold = Annotated[
    float,
    Field(
        ge=-100,
        le=0,
        description="Guard: a window whose mean token log-probability is below this is decoded "
        "again hotter (and, with no_speech_threshold, taken for silence)",
    ),
]
NoSpeechThreshold = Annotated[
    float,
    Field(
        ge=0,
        le=1,
        description="Guard: a window more likely silence than this, and decoded unsure "
        "(log_prob_threshold), is skipped",
    ),
]
HallucinationSilenceThreshold = Annotated[
    float,
    Field(
        ge=0,
        le=60,
        description="Guard: skip silences longer than this many seconds around text that looks "
        "made up (uses word times); 0: off",
    ),
]
RepetitionPenalty = Annotated[
    float,
    # CTranslate2 takes it as a float32 and refuses 0 (what a tiny value rounds to)
    Field(ge=0.01, le=10, description="Guard: above 1, tokens already said are less likely again"),
]
NoRepeatNgramSize = Annotated[
    int, Field(ge=0, le=20, description="Guard: no run of this many tokens twice; 0: off")
]
VadThreshold = Annotated[
    float,
    Field(gt=0, lt=1, description="With vad_filter: how sure the VAD must be that it hears speech"),
]
VadMinSpeechMs = Annotated[
    int, Field(ge=0, le=60_000, description="With vad_filter: shorter speech is dropped, ms")
]
VadMinSilenceMs = Annotated[
    int,
    Field(ge=0, le=600_000, description="With vad_filter: a silence this long splits speech, ms"),
]
VadSpeechPadMs = Annotated[
    int, Field(ge=0, le=10_000, description="With vad_filter: kept around each speech, ms")
]


def subtitle_rules_problem(minimum: float | None, maximum: float | None) -> str | None:
    """What is wrong with these subtitle times (for job options, settings, inboxes); None: nothing."""
    if minimum is not None and maximum is not None and minimum > maximum:
        return f"subtitle_min_s ({minimum:g}) is more than subtitle_max_s ({maximum:g})"
    return None


def with_speaker_counts(base: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """`base` options with `given` laid over them, where a speaker count given replaces all of
    base's counts (an inbox's or a request's num_speakers over the service's max_speakers), and
    diarize turned off takes base's counts with it."""
    merged = {**base, **given}
    if any(given.get(name) is not None for name in SPEAKER_COUNTS) or given.get("diarize") is False:
        for name in SPEAKER_COUNTS:
            merged[name] = given.get(name)
    return merged


def speaker_count_problem(
    diarize: bool | None, exact: int | None, minimum: int | None, maximum: int | None
) -> str | None:
    """What is wrong with these speaker counts (for job options, settings, inboxes); None: nothing."""
    if any(count is not None for count in (exact, minimum, maximum)) and not diarize:
        return "num_speakers, min_speakers and max_speakers need diarize"
    if exact is not None and (minimum is not None or maximum is not None):
        return "give num_speakers, or min_speakers and max_speakers, not both"
    if minimum is not None and maximum is not None and minimum > maximum:
        return f"min_speakers ({minimum}) is more than max_speakers ({maximum})"
    return None


def unknown_model(name: str | None, configured: Iterable[str]) -> str | None:
    """Why a job cannot name this model (None: it can); the message lists the names there are."""
    names = list(configured)
    if name is None or name in RESERVED_MODEL_NAMES or name in names:
        return None
    return f"unknown model {name!r}; the models are: {', '.join([DEFAULT_MODEL_NAME, *names])}"


class JobOptions(BaseModel):
    """How one file is transcribed and where its transcripts go; stored with the job as JSON."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    language: str | None = Field(default=None, description="ISO code; None detects the language")
    model: str | None = Field(
        default=None,
        pattern=MODEL_NAME_PATTERN,
        description="A name from the service's models setting (GET /models); None: the default",
    )
    task: Task = "transcribe"
    beam_size: int = Field(default=DEFAULT_BEAM_SIZE, ge=1, le=20)
    vad_filter: bool = False
    word_timestamps: bool = False
    initial_prompt: str | None = None
    hotwords: str | None = Field(
        default=None,
        description="Terms the model should expect (names, jargon), faster-whisper's hotwords: "
        "they lead its prompt and make it spell them so",
    )
    temperature: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="One sampling temperature; None: faster-whisper's fallback",
    )
    formats: tuple[OutputFormat, ...] = OUTPUT_FORMATS
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
    named_after: str | None = Field(
        default=None,
        description="The file name outputs are named after when not the source's: a link's own "
        "name in an inbox, where its transcripts go beside the link",
    )
    diarize: bool = Field(
        default=False,
        description="Label who speaks (Speaker 1, Speaker 2, ...) on every segment and word, "
        "offline (worker/speakers/)",
    )
    num_speakers: ExactSpeakers = None
    min_speakers: MinSpeakers = None
    max_speakers: MaxSpeakers = None
    language_detection_segments: LanguageDetectionSegments = LANGUAGE_DETECTION_SEGMENTS
    language_detection_threshold: LanguageDetectionThreshold = LANGUAGE_DETECTION_THRESHOLD
    expected_languages: tuple[str, ...] = Field(
        default=(),
        description="Language detection chooses among these codes only; empty: any language",
    )
    compression_ratio_threshold: CompressionRatioThreshold = GUARD_DEFAULTS[
        "compression_ratio_threshold"
    ]
    log_prob_threshold: LogProbThreshold = GUARD_DEFAULTS["log_prob_threshold"]
    no_speech_threshold: NoSpeechThreshold = GUARD_DEFAULTS["no_speech_threshold"]
    hallucination_silence_threshold: HallucinationSilenceThreshold = GUARD_DEFAULTS[
        "hallucination_silence_threshold"
    ]
    repetition_penalty: RepetitionPenalty = GUARD_DEFAULTS["repetition_penalty"]
    no_repeat_ngram_size: NoRepeatNgramSize = GUARD_DEFAULTS["no_repeat_ngram_size"]
    vad_threshold: VadThreshold = GUARD_DEFAULTS["vad_threshold"]
    vad_min_speech_ms: VadMinSpeechMs = GUARD_DEFAULTS["vad_min_speech_ms"]
    vad_min_silence_ms: VadMinSilenceMs = GUARD_DEFAULTS["vad_min_silence_ms"]
    vad_speech_pad_ms: VadSpeechPadMs = GUARD_DEFAULTS["vad_speech_pad_ms"]
    subtitle_rules: SubtitleRulesOn = True
    subtitle_line_chars: SubtitleLineChars = SUBTITLE_LINE_CHARS
    subtitle_lines: SubtitleLines = SUBTITLE_LINES
    subtitle_max_s: SubtitleMaxSeconds = SUBTITLE_MAX_S
    subtitle_min_s: SubtitleMinSeconds = SUBTITLE_MIN_S
    subtitle_cps: SubtitleCps = SUBTITLE_CPS
    span: tuple[int, int] | None = Field(
        default=None,
        description="Set by the service on the pieces of a long file split across workers "
        "(worker/split_files.py): the piece's first sample and the one after its last, at 16 kHz",
    )

    @property
    def subtitle_words(self) -> bool:
        """Whether the job needs word times for its subtitles (computed when not asked for)."""
        return self.subtitle_rules and any(fmt in ("srt", "vtt") for fmt in self.formats)

    @property
    def guard_kwargs(self) -> dict[str, Any]:
        """The guards as WhisperModel.transcribe arguments (hallucination_silence_threshold 0 is
        faster-whisper's None; the VAD's parameters only with vad_filter)."""
        kwargs: dict[str, Any] = {
            name: getattr(self, name) for name in GUARDS if name not in VAD_PARAMETERS
        }
        kwargs["hallucination_silence_threshold"] = self.hallucination_silence_threshold or None
        if self.vad_filter:
            kwargs["vad_parameters"] = {
                theirs: getattr(self, ours) for ours, theirs in VAD_PARAMETERS.items()
            }
        return kwargs

    @property
    def keeps_words(self) -> bool:
        """Whether the transcript keeps its words: asked for, or for the subtitles (the json
        output shows them only when asked for)."""
        return self.word_timestamps or self.subtitle_words

    @field_validator("model")
    @classmethod
    def _default_is_none(cls, name: str | None) -> str | None:
        return None if name in RESERVED_MODEL_NAMES else name

    @field_validator("expected_languages")
    @classmethod
    def _one_order(cls, codes: tuple[str, ...]) -> tuple[str, ...]:
        # "de,en" and "en,de" are the same work (db/identity.py options_key)
        return tuple(sorted(set(codes)))

    @field_validator("named_after")
    @classmethod
    def _bare_name(cls, name: str | None) -> str | None:
        if name is not None and (not name or "/" in name or name in (".", "..")):
            raise ValueError(f"named_after must be a file name, not {name!r}")
        return name

    @field_validator("formats", mode="before")
    @classmethod
    def _known_formats(cls, formats: Any) -> Any:
        # Before the type's own check, so that an unknown one reads as known_formats says it.
        if isinstance(formats, list | tuple) and all(isinstance(f, str) for f in formats):
            return known_formats(formats)
        return formats

    @model_validator(mode="after")
    def _speaker_counts(self) -> JobOptions:
        problem = speaker_count_problem(
            self.diarize, self.num_speakers, self.min_speakers, self.max_speakers
        )
        if problem is not None:
            raise ValueError(problem)
        problem = subtitle_rules_problem(self.subtitle_min_s, self.subtitle_max_s)
        if problem is not None:
            raise ValueError(problem)
        return self

    # Set on options read from a job whose stored values this version refuses (stored_options).
    _unusable: str | None = PrivateAttr(default=None)

    @property
    def unusable(self) -> str | None:
        """Why this version cannot run the job as stored (its worker fails it); None: it can."""
        return self._unusable


def stored_options(stored: object) -> JobOptions:
    """A job's options as stored: always readable, so that no row stops a listing, the change
    feed or the supervisor. Keys this version does not know (a newer version wrote them, during
    a rolling upgrade) are ignored, and said once. Values it refuses (a format it does not know)
    read as its defaults and mark the options unusable: the job's worker fails it with the
    reason. The API's own input stays strict (api/schemas.py)."""
    if not isinstance(stored, Mapping):
        options = JobOptions()
        options._unusable = f"the stored options are not an object: {stored!r:.100}"
        return options
    known = {key: value for key, value in stored.items() if key in JobOptions.model_fields}
    # A job stored before subtitle rules existed renders its srt and vtt as it did then.
    known.setdefault("subtitle_rules", False)
    unknown = frozenset(stored) - frozenset(known)
    if unknown and unknown not in _unknown_options_seen:
        _unknown_options_seen.add(unknown)
        log.warning(
            "stored job options hold %s, unknown to this version (written by a newer one?): "
            "ignored",
            ", ".join(sorted(map(str, unknown))),
        )
    try:
        return JobOptions.model_validate(known)
    except ValidationError as exc:
        refused = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
        reason = "; ".join(
            f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors()
        )
    try:
        options = JobOptions.model_validate(
            {key: value for key, value in known.items() if key not in refused}
        )
    except ValidationError:
        options = JobOptions()
    options._unusable = reason
    return options


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
    # Identity (db/identity.py): -1 where unknown; the key is None on jobs superseded as the
    # holder of their work (an older or forced-over run) and on those nothing should find.
    source_inode: int
    source_ctime_ns: int
    source_fingerprint: str | None
    options_key: str
    dedupe_key: str | None
    source_removed_at: datetime | None  # the retention removed the uploaded source
    parent_id: int | None = None  # a piece of that job's file (worker/split_files.py)

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> JobRecord:
        values = dict(row)
        values["options"] = stored_options(values["options"])
        values["status"] = JobStatus(values["status"])
        values["outputs"] = tuple(values["outputs"] or ())
        values.pop("model", None)  # the options' own, copied for the claim to read
        return cls(**values)


@dataclass(frozen=True)
class JobQuery:
    """Which jobs a listing shows; every part optional. Newest first, paged by id."""

    status: JobStatus | None = None
    origin: str | None = None  # "inbox:NAME", "api", "upload" or "cli" (see inbox_origin)
    since: datetime | None = None  # created at or after
    until: datetime | None = None  # created before
    text: str | None = None  # in the source path or the transcript, case-blind
    path: str | None = None  # in the source path alone, case-blind
    before_id: int | None = None  # the page after the one that ended at this id


@dataclass(frozen=True)
class TranscriptSummary:
    language: str
    duration: float
    language_probability: float = 1.0  # 1.0 when the language was given, not detected


@dataclass(frozen=True)
class SearchHit:
    job_id: int
    start: float  # the matching segment's time in the audio, seconds
    end: float
    snippet: str  # the segment's text around the match, plain (no markup)
    matches: tuple[tuple[int, int], ...]  # the matched words' (start, end) offsets in snippet
    rank: float  # higher is better
    speaker: str | None = None  # the segment's speaker label, with speaker labels


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
    observer: ObserverKind  # as actually used: polling also when native events could not watch it
    poll_interval_s: float | None  # for polling; None with native events
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
