"""Every setting of the service, in one place: defaults < config file < environment < flags.

Environment variables carry the prefix WHISPER_TRANSCRIBER_ (WHISPER_TRANSCRIBER_DATABASE_URL, ...).
The optional config file is TOML with the same names as keys (database_url = "..."); it is named by
--config or WHISPER_TRANSCRIBER_CONFIG_FILE. Read in entry points only: everything below them takes
plain arguments.

Over 400 lines on purpose: one class is the single statement of every setting, its default (a
constant of the module that owns it), its check and its description, from which the CLI's flags
(service/cli_flags.py) and docs/configuration.md are made.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

# (not from pydantic itself: it exports the name only since 2.10; the floor is 2.7)
from pydantic.functional_validators import ModelWrapValidatorHandler
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from whisper_transcriber.api.app_context import DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_UPLOADS_DIR
from whisper_transcriber.db.job_store import DEFAULT_MAX_ATTEMPTS, LEASE_S, MODEL_PREFERENCE_S
from whisper_transcriber.db.values import (
    DEFAULT_BEAM_SIZE,
    GUARD_DEFAULTS,
    GUARDS,
    LANGUAGE_DETECTION,
    LANGUAGE_DETECTION_SEGMENTS,
    LANGUAGE_DETECTION_THRESHOLD,
    MAX_SPEAKERS,
    MODEL_NAME_PATTERN,
    OUTPUT_FORMATS,
    RESERVED_MODEL_NAMES,
    RETRY_BASE_DELAY_S,
    RETRY_MAX_DELAY_S,
    SPEAKER_COUNTS,
    SUBTITLE_CPS,
    SUBTITLE_LINE_CHARS,
    SUBTITLE_LINES,
    SUBTITLE_MAX_S,
    SUBTITLE_MIN_S,
    SUBTITLE_RULES,
    CompressionRatioThreshold,
    ExactSpeakers,
    HallucinationSilenceThreshold,
    JobOptions,
    LanguageDetectionSegments,
    LanguageDetectionThreshold,
    LogProbThreshold,
    MaxSpeakers,
    MinSpeakers,
    NoRepeatNgramSize,
    NoSpeechThreshold,
    ObserverKind,
    RepetitionPenalty,
    SubtitleCps,
    SubtitleLineChars,
    SubtitleLines,
    SubtitleMaxSeconds,
    SubtitleMinSeconds,
    SubtitleRulesOn,
    Task,
    VadMinSilenceMs,
    VadMinSpeechMs,
    VadSpeechPadMs,
    VadThreshold,
    known_formats,
    speaker_count_problem,
    subtitle_rules_problem,
    unknown_model,
)
from whisper_transcriber.db.webhook_outbox import EVENT_TYPES, EventType
from whisper_transcriber.db.worker_registry import WORKER_HEARTBEAT_S, WORKER_STALE_AFTER_S
from whisper_transcriber.service.logs import LogFormat
from whisper_transcriber.service.renamed_settings import RENAMED_KEY, RenamingSource
from whisper_transcriber.service.webhooks.http import (
    TargetPolicy,
    TargetRefused,
    allow_entry_problem,
    check_url,
)
from whisper_transcriber.service.webhooks.signing import secret_problem
from whisper_transcriber.watcher.filters import IGNORED_PATTERNS
from whisper_transcriber.watcher.spec import DEFAULT_OBSERVER, POLL_INTERVAL_S
from whisper_transcriber.watcher.stability import SETTLE_S
from whisper_transcriber.worker.defaults import (
    BUNDLED_MODEL,
    DEFAULT_ENGINE,
    MODEL_CACHE_DIR,
    STOP_GRACE_S,
    WORKER_NICENESS,
)
from whisper_transcriber.worker.languages import Languages, known_language
from whisper_transcriber.worker.media_types import MEDIA_EXTENSIONS

ENV_PREFIX = "WHISPER_TRANSCRIBER_"
DEFAULT_DATABASE_URL = "sqlite:///./data/whisper-transcriber.db"
DEFAULT_INBOX = Path("inbox")
# whisper-asr-webservice's port, so that clients such as Bazarr find us where they expect it.
DEFAULT_PORT = 9000

Role = Literal["api", "watch", "work"]
ROLES: tuple[Role, ...] = ("api", "watch", "work")

ComputeType = Literal[
    "auto",
    "default",
    "int8",
    "int8_float16",
    "int8_float32",
    "int8_bfloat16",
    "int16",
    "float16",
    "bfloat16",
    "float32",
]


class SettingError(Exception):
    """A setting that stops start-up; the message names the setting and how to set it."""

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        super().__init__(f"setting {setting} ({describe_setting(setting)}): {message}")


def describe_setting(name: str) -> str:
    """How the setting is given: its flag where a command has one, its environment variable."""
    variable = f"{ENV_PREFIX}{name.upper()}"
    if name not in FLAGGED:
        return variable
    return f"{flag_name(name)} or {variable}"


def flag_name(name: str) -> str:
    """The flag of a setting (or of a renamed setting's old name): --kebab-case unless named."""
    return FLAG_NAMES.get(name, "--" + name.replace("_", "-"))


# The settings some command takes as a flag (service/cli_flags.py makes the flags from the
# settings; tests/e2e/test_cli_commands.py checks this against the CLI); every other one is set in the
# environment or the config file. A renamed setting's old name keeps its flag (renamed_settings).
FLAGGED = frozenset(
    {
        "api_key", "beam_size", "compute_type", "config_file", "database_url", "device",
        "diarize", "formats", "host", "hotwords", "inboxes", "initial_prompt", "instance_name",
        "job_timeout_s", "language", "log_format", "max_speakers", "min_speakers", "num_speakers",
        "log_level", "max_attempts", "model", "output_dir", "port", "roles", "server_url", "task",
        "threads_per_worker", "vad_filter", "word_timestamps", "workers", *SUBTITLE_RULES,
        *LANGUAGE_DETECTION, *GUARDS,
    }
)  # fmt: skip


# Flags whose name differs from the setting's.
FLAG_NAMES = {
    "inboxes": "--inbox",
    "config_file": "--config",
    "roles": "--role",
    "server_url": "--server",
}


def _split_list(value: Any) -> Any:
    """Lists from the environment or a flag come as 'a,b,c' (JSON lists are accepted too)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


def _split_nested(value: Any) -> Any:
    """'a,b', or repeated flags whose items may themselves be comma lists."""
    items = _split_list(value)
    if not isinstance(items, list | tuple):
        return items
    parts: list[Any] = []
    for item in items:
        split = _split_list(item)
        parts += split if isinstance(split, list) else [item]
    return parts


# Durations become timedeltas and times to come: beyond a century they overflow (a float's
# infinity or 1e308), and no one means them.
MAX_SECONDS = 100 * 365 * 24 * 3600
DURATION_SETTINGS = (
    "poll_interval_s",
    "worker_stale_after_s",
    "rescan_interval_s",
    "upload_retention_s",
    "job_retention_s",
    "http_header_timeout_s",
    "http_keepalive_timeout_s",
    "http_body_idle_timeout_s",
    "job_timeout_s",
    "max_audio_duration_s",
    "lease_s",
    "shutdown_grace_s",
    "retry_delay_s",
    "retry_max_delay_s",
    "settle_s",
    "webhook_retry_s",
    "webhook_retention_s",
)


def _finite_seconds(seconds: float | None) -> float | None:
    if seconds is not None and not (math.isfinite(seconds) and seconds <= MAX_SECONDS):
        raise ValueError(f"at most {MAX_SECONDS} s (100 years), not {seconds!r}")
    return seconds


class NamedModelSetting(BaseModel):
    """One more model jobs may name (the models setting): its weights and how to run them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(
        description="As the model setting: 'bundled', 'bundled-base', a faster-whisper size "
        "name or a CTranslate2 folder"
    )
    compute_type: ComputeType = Field(default="auto", description="As the compute_type setting")


class WebhookSetting(BaseModel):
    """One receiver of job events (the webhooks setting)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="Where events are POSTed (http or https)")
    secret: SecretStr = Field(
        description="The Standard Webhooks secret that signs them: whsec_ and base64 of 24-64 "
        "bytes (`whisper-transcriber webhook-secret` makes one)"
    )
    events: list[EventType] = Field(
        default=list(EVENT_TYPES), description="Which: queued, started, done, failed, cancelled"
    )
    transcript: bool = Field(
        default=False, description="A done job's transcript inline, as data.transcript"
    )
    inboxes: list[str] = Field(
        default=[], description="Only the jobs of these inboxes (by name); empty: every job"
    )

    @field_validator("url")
    @classmethod
    def _callable_url(cls, url: str) -> str:
        try:
            return check_url(url, TargetPolicy(guarded=False))
        except TargetRefused as exc:
            raise ValueError(str(exc)) from None

    @field_validator("secret")
    @classmethod
    def _usable_secret(cls, secret: SecretStr) -> SecretStr:
        problem = secret_problem(secret.get_secret_value())
        if problem is not None:
            raise ValueError(problem)
        return secret


MIN_TOKEN_CHARS = 16


class MediaServerSetting(BaseModel):
    """A Jellyfin, Plex or Emby server whose notifications become jobs (the media_servers
    setting; docs/guides/automation.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["jellyfin", "plex", "emby"] = Field(description="jellyfin, plex or emby")
    url: str = Field(
        description="The server's own address, for finding an item's file and asking for a "
        "refresh: http://jellyfin:8096, http://plex:32400"
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="Jellyfin's or Emby's API key (Dashboard, API Keys), or Plex's token "
        "(X-Plex-Token); unset: the server is not called (its notification must name the "
        "file, and no refresh is asked for)",
    )
    token: SecretStr | None = Field(
        default=None,
        description="What the server's webhook URL carries (?token=...), since Plex cannot send "
        "an API key header; unset: the api_key setting's key is needed, as for any request",
    )
    path_map: dict[str, str] = Field(
        default={},
        description="The server's path prefixes and ours: {'/media': '/mnt/nas/media'} (the "
        "longest prefix that matches is replaced); unset: the same paths",
    )
    playback: bool = Field(
        default=False,
        description="Also when playback starts of an item that has no subtitle in languages",
    )
    languages: list[str] = Field(
        default=[],
        description="The subtitle languages playback looks for (codes: en, de); empty: any "
        "subtitle will do",
    )
    refresh: bool = Field(
        default=True,
        description="Ask the server to refresh the item (Jellyfin, Emby) or scan its folder "
        "(Plex) once the subtitle is written",
    )

    @field_validator("url")
    @classmethod
    def _server_url(cls, url: str) -> str:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise ValueError(f"{url!r} is not a server address: http(s)://host[:port][/prefix]")
        return url.strip().rstrip("/")

    @field_validator("token")
    @classmethod
    def _guessable_token(cls, token: SecretStr | None) -> SecretStr | None:
        """An empty or short token (an unset ${VARIABLE} in a template) would open the route."""
        text = token.get_secret_value() if token is not None else ""
        if token is not None and (
            len(text) < MIN_TOKEN_CHARS or not text.isascii() or not text.isprintable()
        ):
            raise ValueError(
                f"the token must be at least {MIN_TOKEN_CHARS} printable ASCII characters "
                "(openssl rand -hex 16 makes one)"
            )
        return token

    @field_validator("path_map")
    @classmethod
    def _absolute_prefixes(cls, path_map: dict[str, str]) -> dict[str, str]:
        for theirs, ours in path_map.items():
            if not (theirs.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", theirs)):
                raise ValueError(f"path_map: {theirs!r} is not an absolute path of the server's")
            if not Path(ours).is_absolute():
                raise ValueError(f"path_map: {ours!r} is not an absolute path of ours")
        return path_map


class InboxSettings(BaseModel):
    """One watched folder and its own options; what it leaves unset comes from the service's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(description="The folder to watch")
    name: str | None = Field(default=None, description="Shown in job history; the folder's name")
    recursive: bool = Field(default=True, description="Watch sub-folders too")
    observer: ObserverKind = Field(
        default=DEFAULT_OBSERVER,
        description="native (inotify) for local disks; polling for SMB/NFS/CIFS mounts",
    )
    poll_interval_s: float = Field(
        default=POLL_INTERVAL_S, gt=0, description="Seconds between two looks at a polling inbox"
    )
    language: str | None = Field(default=None, description="Language code for this inbox's files")
    model: str | None = Field(
        default=None, description="A name from the models setting for this inbox's files"
    )
    task: Task | None = Field(default=None, description="transcribe, or translate into English")
    formats: list[str] | None = Field(
        default=None, description="Transcript formats for this inbox (formats=srt+vtt in a flag)"
    )
    outbox: Path | None = Field(
        default=None, description="Transcripts go here, mirroring the inbox tree; unset: beside"
    )
    on_success: Literal["keep", "move"] = Field(
        default="keep", description="keep the original, or move it into done_dir"
    )
    on_failure: Literal["keep", "move"] = Field(
        default="keep", description="keep the original, or move it into failed_dir"
    )
    done_dir: Path | None = Field(default=None, description="Default: <inbox>/done")
    failed_dir: Path | None = Field(default=None, description="Default: <inbox>/failed")
    media_library: bool = Field(
        default=False,
        description="Read-only: never move originals; write Movie.en.srt sidecars; skip videos "
        "that already have a subtitle in the language",
    )
    initial_prompt: str | None = Field(
        default=None, description="Text that primes the model for this inbox's files"
    )
    hotwords: str | None = Field(
        default=None, description="Terms this inbox's files use (with the vocabulary's)"
    )
    vocabulary: Path | None = Field(
        default=None,
        description="A text file of this library's names and jargon, one term a line (# starts "
        "a comment), read at start: its terms join the hotwords",
    )
    diarize: bool | None = Field(default=None, description="Speaker labels for this inbox's files")
    num_speakers: int | None = Field(default=None, ge=1, le=MAX_SPEAKERS)
    min_speakers: int | None = Field(default=None, ge=1, le=MAX_SPEAKERS)
    max_speakers: int | None = Field(default=None, ge=1, le=MAX_SPEAKERS)
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
        description="The languages this inbox's files are in: detection chooses among them, "
        "whatever language the service sets (expected_languages=de+en in a flag)",
    )
    vad_filter: bool | None = Field(
        default=None, description="Skip what is not speech (Silero VAD) in this inbox's files"
    )
    subtitle_rules: SubtitleRulesOn | None = None
    subtitle_line_chars: SubtitleLineChars | None = None
    subtitle_lines: SubtitleLines | None = None
    subtitle_max_s: SubtitleMaxSeconds | None = None
    subtitle_min_s: SubtitleMinSeconds | None = None
    subtitle_cps: SubtitleCps | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        """A bare path, or 'PATH?observer=polling&language=de' (a flag or environment item)."""
        if isinstance(value, Path):
            return {"path": value}
        if not isinstance(value, str):
            return value
        if "?" not in value or Path(value).expanduser().exists():
            return {"path": value}  # a folder whose name has a "?" in it is taken whole
        path, _, query = value.rpartition("?")
        fields: dict[str, Any] = {"path": path}
        for key, item in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
            fields[key] = item.split() if key in ("formats", "expected_languages") else item
        return fields

    @field_validator("formats")
    @classmethod
    def _check_formats(cls, formats: list[str] | None) -> list[str] | None:
        return None if formats is None else list(known_formats(formats))

    @field_validator("poll_interval_s")
    @classmethod
    def _finite_poll(cls, seconds: float) -> float:
        return _finite_seconds(seconds) or seconds

    @field_validator("language")
    @classmethod
    def _known_language(cls, language: str | None) -> str | None:
        return known_language(language)

    @model_validator(mode="after")
    def _read_only_library(self) -> InboxSettings:
        if self.media_library and "move" in (self.on_success, self.on_failure):
            raise ValueError(
                f"inbox {self.path}: a media library is read-only; on_success and on_failure "
                "must be keep"
            )
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", env_ignore_empty=True, validate_default=True
    )

    # What renamed_settings.RenamingSource noted: old names given, and what to give instead.
    _renamed: dict[str, str] = PrivateAttr(default_factory=dict)

    config_file: Path | None = Field(default=None, description="TOML file with settings")
    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL: sqlite:///path/to/file.db or postgresql://user@host/db",
    )
    inboxes: Annotated[list[InboxSettings], NoDecode] = Field(
        default=[InboxSettings(path=DEFAULT_INBOX)],
        description="Folders watched for new audio and video files: paths, 'PATH?key=value&...', "
        "or [[inboxes]] tables in the config file",
    )
    roles: Annotated[list[Role], NoDecode] = Field(
        default=list(ROLES),
        description="What this instance runs: api (HTTP), watch (inboxes), work (the worker pool); "
        "split them to add workers on more machines against one PostgreSQL",
    )
    instance_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="This instance's name in the worker registry (/status, the dashboard, "
        "`check`); unset: the hostname",
    )
    worker_stale_after_s: float = Field(
        default=WORKER_STALE_AFTER_S,
        ge=2 * WORKER_HEARTBEAT_S,  # below, a worker would flap between beats
        description="A worker whose heartbeat is older than this is reported stale, and `check` "
        f"fails (workers beat every {WORKER_HEARTBEAT_S:g} s)",
    )
    rescan_interval_s: float = Field(
        default=300.0,
        gt=0,
        description="Seconds between full rescans of every inbox (catches events a NAS dropped)",
    )
    media_extensions: Annotated[list[str], NoDecode] = Field(
        default=sorted(MEDIA_EXTENSIONS), description="File extensions taken from inboxes"
    )
    ignore_patterns: Annotated[list[str], NoDecode] = Field(
        default=list(IGNORED_PATTERNS),
        description="Names (glob patterns) of files and folders that inboxes ignore",
    )
    allowed_roots: Annotated[list[Path], NoDecode] = Field(
        default=[],
        description="Folders whose files POST /transcribe may name; empty means the inboxes",
    )
    link_roots: Annotated[list[Path], NoDecode] = Field(
        default=[],
        description="Folders outside the inboxes that symbolic links in an inbox may point into "
        "(a downloads folder); a link leading anywhere else is refused",
    )
    uploads_dir: Path = Field(
        default=DEFAULT_UPLOADS_DIR,
        description="Where uploaded files are kept (each in a folder of its own, transcripts beside)",
    )
    max_upload_mb: float = Field(
        default=DEFAULT_MAX_UPLOAD_BYTES / 2**20, gt=0, description="Largest upload, in MiB"
    )
    upload_retention_s: float = Field(
        default=86400.0,
        ge=0,
        description="Seconds an upload (POST /transcribe, /asr, /v1/audio/...) is kept once every "
        "job of its file has ended; then its folder is removed with the transcript files written "
        "beside it (those in output_dir stay; the transcript stays in the database, at "
        "/jobs/{id}/transcript, and the job shows source_removed_at). Swept every 10 minutes "
        "(more often for a shorter retention) by instances with the api role. 0: kept forever",
    )
    job_retention_s: float = Field(
        default=0.0,
        ge=0,
        description="Seconds an ended job and its transcript stay in the history; then both are "
        "deleted. Kept whatever their age: queued and running jobs, and the latest job of a "
        "file that is not an upload and whose original was not moved away, as a rescan would "
        "transcribe that file again once its job is forgotten. Swept by instances with the api "
        "or watch role. 0: kept forever",
    )
    webhooks: dict[str, WebhookSetting] = Field(
        default={},
        description="Receivers of job events, signed as Standard Webhooks: {name: {url, secret, "
        "events, transcript, inboxes}}, e.g. "
        '{"notes": {"url": "https://notes.lan/hook", "secret": "whsec_...", "events": ["done"]}}'
        " (docs/guides/automation.md). Sent by instances with the watch role",
    )
    media_servers: dict[str, MediaServerSetting] = Field(
        default={},
        description="Jellyfin, Plex and Emby servers whose 'item added' notifications (and "
        "optionally 'playback started') become jobs, at POST /media-servers/NAME: {name: {kind, "
        "url, api_key, token, path_map, playback, languages, refresh}}. The file must lie in an "
        "inbox, whose options and media-library rules apply (docs/guides/automation.md)",
    )
    callback_secret: SecretStr | None = Field(
        default=None,
        description="Signs the deliveries to a callback_url a request gives without a "
        "callback_secret of its own (whsec_ and base64, `whisper-transcriber webhook-secret` "
        "makes one); unset: such a request must give its secret",
    )
    callback_allow: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="Where a request's callback_url may point: host names ('*.example.com' for "
        "subdomains) and networks (10.0.0.0/8, 192.168.1.20). Unset: any public address, and "
        "never loopback, link-local or private ones (a request must not make this service "
        "call into its own network); set: only these. The webhooks setting's receivers may be "
        "anywhere",
    )
    webhook_retry_s: float = Field(
        default=86400.0,
        gt=0,
        description="How long a delivery is tried again before it is marked failed with its last "
        "answer; POST /webhooks/deliveries/{id}/resend tries a failed one again",
    )
    webhook_backoff_s: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="The wait after a delivery's first failed attempt; it doubles after each "
        "(up to an hour), each wait drawn between half and all of it, so that receivers coming "
        "back are not called all at once",
    )
    webhook_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Seconds one delivery attempt may take, answer included",
    )
    webhook_retention_s: float = Field(
        default=30 * 86400.0,
        ge=0,
        description="Seconds delivered and failed deliveries stay in GET /webhooks/deliveries; "
        "0: kept forever",
    )
    output_dir: Path | None = Field(
        default=None, description="Folder for transcripts; unset writes them beside the source"
    )
    formats: Annotated[list[str], NoDecode] = Field(
        default=list(OUTPUT_FORMATS), description=f"Transcript formats: {', '.join(OUTPUT_FORMATS)}"
    )
    workers: int | None = Field(
        default=None, ge=1, description="Worker processes; unset chooses from the machine"
    )
    threads_per_worker: int | None = Field(
        default=None, ge=1, description="CPU threads of each worker; unset chooses from the machine"
    )
    model: str = Field(
        default=BUNDLED_MODEL,
        description="'bundled' (tiny.en, offline), 'bundled-base' (multilingual, offline, the "
        "multilingual extra), a faster-whisper size name, or a CTranslate2 folder",
    )
    models: dict[str, NamedModelSetting] = Field(
        default={},
        description="More models that jobs, inboxes and requests may name (GET /models), each "
        "loaded by a worker when a job asks for it: {name: {model, compute_type}}, e.g. "
        '{"accurate": {"model": "small", "compute_type": "int8"}}; the model setting is the one '
        "named default",
    )
    model_memory_mb: float | None = Field(
        default=None,
        gt=0,
        description="Memory each worker may give the models of the models setting (the default "
        "model is always kept): the least recently used are dropped to load another; unset: "
        "no limit",
    )
    model_idle_s: float | None = Field(
        default=600.0,
        gt=0,
        description="A model of the models setting that no job of a worker has used for this "
        "long is dropped from it (the default model is kept); unset: kept",
    )
    model_switch_after_s: float = Field(
        default=MODEL_PREFERENCE_S,
        ge=0,
        le=86400,
        description="Workers take jobs for the models they hold before older jobs for other "
        "models, until those have waited this long; 0: strictly the oldest job first (a mixed "
        "queue then makes workers load models back and forth)",
    )
    split_after_s: float | None = Field(
        default=None,
        gt=0,
        description="Files longer than this many seconds (as their headers state) are cut at "
        "pauses into pieces that every worker, on every machine, transcribes side by side, "
        "joined into one transcript. Each piece starts without the text before it, so the words "
        "differ from one worker's whole run (docs/benchmarks.md, 'Long files split across "
        "workers'). Not for jobs with speaker labels. Unset: every file is transcribed whole by "
        "one worker, as faster-whisper transcribes it",
    )
    split_piece_s: float = Field(
        default=180.0,
        ge=30,
        le=3600,
        description="The length of those pieces in seconds, at most (each ends in the longest "
        "pause of its last 30 s)",
    )
    model_cache_dir: Path = Field(
        default=MODEL_CACHE_DIR,
        description="Where faster-whisper size names are downloaded and bundled-base is joined",
    )
    engine: str = Field(
        default=DEFAULT_ENGINE,
        pattern=r"^[\w.]+:\w+$",
        description="The engine class worker processes load, as module:Class: faster-whisper by "
        "default; another is for tests and experiments (tests/helpers/fake_engine.py loads no model)",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="auto, cpu or cuda")
    compute_type: ComputeType = Field(
        default="auto", description="CTranslate2 compute type; auto is int8 on CPU, float16 on GPU"
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="The service's API key: when set, every endpoint but /health needs it (Bearer "
        "or X-API-Key); `transcribe` sends it to server_url",
    )
    server_url: str | None = Field(
        default=None,
        description="`transcribe` sends its files to the service at this URL (http://host:9000) "
        "and follows them there, instead of running workers of its own; api_key is sent with "
        "each request",
    )
    host: str = Field(default="127.0.0.1", description="Address the HTTP API listens on")
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535, description="Port of the HTTP API")
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="Host names the HTTP API answers to besides the ones it always does (IP "
        "addresses, names without a dot such as localhost or a compose service, names under "
        ".localhost, .local, .internal and .home.arpa, this machine's name, the host setting): "
        "a request for any other name is refused, as a DNS-rebinding page's would be. "
        "'.example.com' allows a domain and its subdomains; '*' every name",
    )
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="Web origins (https://host[:port]) whose pages may create, cancel or retry "
        "jobs besides the service's own (its dashboard); '*' any, which turns the cross-site "
        "check off",
    )
    http_header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a client has to send a request's head (request line and headers) "
        "from connecting, or from its first byte on a kept-alive connection; then it is closed",
    )
    http_keepalive_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="Seconds an idle connection is kept open between two requests",
    )
    http_body_idle_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a request body (an upload) may stop arriving before the connection "
        "is closed; a slow upload goes on as long as bytes flow",
    )
    http_max_connections: int = Field(
        default=500,
        ge=1,
        description="Open HTTP connections at most: past it a new connection closes the one that "
        "has waited longest for a request, or is answered 503 when every one is busy",
    )
    job_timeout_s: float = Field(
        default=3600.0,
        gt=0,
        description="Seconds one job may run; past it the worker is killed and replaced, and the "
        "attempt fails (formerly job_timeout)",
    )
    max_attempts: int = Field(
        default=DEFAULT_MAX_ATTEMPTS, ge=1, description="Attempts before a job is failed"
    )
    worker_niceness: int = Field(
        default=WORKER_NICENESS,
        ge=0,
        le=19,
        description="Worker processes run this much lower in priority (nice) than the API and the "
        "watcher, so requests stay quick while every worker transcribes; 0: the same",
    )
    worker_max_jobs: int | None = Field(
        default=500,
        ge=1,
        description="A worker process is replaced by a fresh one after this many jobs; unset: never",
    )
    worker_max_memory_mb: float | None = Field(
        default=None,
        gt=0,
        description="A worker process whose memory (RSS) is above this after a job is replaced",
    )
    max_audio_duration_s: float | None = Field(
        default=None,
        gt=0,
        description="A file with more seconds of audio than this fails at once, refused from its "
        "header before decoding (or once decoding passes it); unset: any length",
    )
    lease_s: float = Field(
        default=LEASE_S, gt=0, description="Seconds a claim lasts without a heartbeat"
    )
    poll_interval_s: float = Field(
        default=30.0,
        gt=0,
        description="Fallback: seconds an idle worker waits before looking at the queue unprompted "
        "(a queued job wakes it at once)",
    )
    shutdown_grace_s: float = Field(
        default=STOP_GRACE_S, ge=0, description="Seconds running jobs get to finish on SIGTERM"
    )
    retry_delay_s: float = Field(
        default=RETRY_BASE_DELAY_S,
        ge=0,
        description="Backoff before the second attempt; doubles each time",
    )
    retry_max_delay_s: float = Field(default=RETRY_MAX_DELAY_S, ge=0, description="Longest backoff")
    settle_s: float = Field(
        default=SETTLE_S,
        ge=0,
        description="Seconds a file's size and mtime must hold before it is taken",
    )
    language: str | None = Field(default=None, description="Language code; unset detects it")
    task: Task = Field(default="transcribe", description="transcribe, or translate into English")
    beam_size: int = Field(
        default=DEFAULT_BEAM_SIZE, ge=1, le=20, description="Beam search width (1 is greedy)"
    )
    vad_filter: bool = Field(default=False, description="Skip silence with Silero VAD")
    word_timestamps: bool = Field(default=False, description="Word-level times in the json output")
    initial_prompt: str | None = Field(
        default=None, description="Text that primes the model (names, spelling, style)"
    )
    hotwords: str | None = Field(
        default=None,
        description="Terms the model should expect, as faster-whisper's hotwords: "
        '"Kubernetes, Siobhan Nguyen"',
    )
    diarize: bool = Field(
        default=False,
        description="Speaker labels (Speaker 1, Speaker 2, ...) on every segment, made offline; "
        "needs the speakers extra",
    )
    num_speakers: ExactSpeakers = None
    min_speakers: MinSpeakers = None
    max_speakers: MaxSpeakers = None
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
    language_detection_segments: LanguageDetectionSegments = LANGUAGE_DETECTION_SEGMENTS
    language_detection_threshold: LanguageDetectionThreshold = LANGUAGE_DETECTION_THRESHOLD
    expected_languages: Languages = Field(
        default=None,
        description="The languages the files are in (de,en): detection chooses among them; "
        "unset: any",
    )
    subtitle_rules: SubtitleRulesOn = True
    subtitle_line_chars: SubtitleLineChars = SUBTITLE_LINE_CHARS
    subtitle_lines: SubtitleLines = SUBTITLE_LINES
    subtitle_max_s: SubtitleMaxSeconds = SUBTITLE_MAX_S
    subtitle_min_s: SubtitleMinSeconds = SUBTITLE_MIN_S
    subtitle_cps: SubtitleCps = SUBTITLE_CPS
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Lowest level logged"
    )
    log_format: LogFormat = Field(
        default="text",
        description="text (readable) or json (one object per line, with job_id on lines about a job)",
    )

    @field_validator(
        "inboxes",
        "allowed_roots",
        "link_roots",
        "media_extensions",
        "ignore_patterns",
        mode="before",
    )
    @classmethod
    def _split_items(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("expected_languages", mode="before")
    @classmethod
    def _split_languages(cls, value: Any) -> Any:
        return _split_nested(value)  # --expected-languages de,en, repeated or not

    @field_validator("allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("allowed_hosts")
    @classmethod
    def _bare_names(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            if "/" in host or (":" in host and not host.startswith("[")):
                raise ValueError(f"{host!r}: give a host name alone, without scheme or port")
        return [host.strip().lower() for host in hosts]

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            parts = urlsplit(origin.strip())
            if origin != "*" and (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or parts.path.strip("/")
                or parts.query
            ):
                raise ValueError(f"{origin!r} is not an origin: scheme://host[:port], or *")
        return [origin.strip().lower().rstrip("/") for origin in origins]

    @field_validator("callback_allow", mode="before")
    @classmethod
    def _split_allowed(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("callback_allow")
    @classmethod
    def _hosts_or_networks(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            problem = allow_entry_problem(entry)
            if problem is not None:
                raise ValueError(problem)
        return entries

    @field_validator("callback_secret")
    @classmethod
    def _usable_callback_secret(cls, secret: SecretStr | None) -> SecretStr | None:
        problem = secret_problem(secret.get_secret_value()) if secret is not None else None
        if problem is not None:
            raise ValueError(problem)
        return secret

    @field_validator("media_servers")
    @classmethod
    def _server_names(cls, servers: dict[str, MediaServerSetting]) -> dict[str, MediaServerSetting]:
        for name in servers:  # each is a path segment: /media-servers/NAME
            if not re.fullmatch(MODEL_NAME_PATTERN, name):
                raise ValueError(
                    f"media server name {name!r}: letters, digits, '.', '_' and '-', at most 100"
                )
        return servers

    @model_validator(mode="after")
    def _webhook_inboxes_exist(self) -> Settings:
        names = {inbox.name or inbox.path.expanduser().resolve().name for inbox in self.inboxes}
        for hook, entry in self.webhooks.items():
            unknown = sorted(set(entry.inboxes) - names)
            if unknown:
                raise ValueError(
                    f"webhook {hook}: no inbox is named {', '.join(unknown)}; the inboxes are "
                    f"{', '.join(sorted(names))}"
                )
        return self

    @field_validator("api_key")
    @classmethod
    def _sendable_key(cls, key: SecretStr | None) -> SecretStr | None:
        """HTTP headers carry Latin-1 and clients send ASCII: any other key could never match."""
        text = key.get_secret_value() if key is not None else ""
        if not (text.isascii() and text.isprintable()):
            raise ValueError(
                "the key must be printable ASCII (letters, digits, punctuation), as clients send "
                "it in an HTTP header; it has another character"
            )
        if text != text.strip():
            raise ValueError("the key must not begin or end with a space")
        return key

    @field_validator(*DURATION_SETTINGS)
    @classmethod
    def _finite_duration(cls, seconds: float | None) -> float | None:
        return _finite_seconds(seconds)

    @field_validator("instance_name")
    @classmethod
    def _shown_name(cls, name: str | None) -> str | None:
        """Shown in /status, /metrics labels, the dashboard and `check`'s lines, and stored as
        text (PostgreSQL refuses NUL): printable, with no space at either end."""
        if name is not None and not name.isprintable():
            raise ValueError("the name must be printable: it has a control character")
        if name is not None and (name != name.strip() or not name):
            raise ValueError("the name must not be empty or begin or end with a space")
        return name

    @field_validator("server_url")
    @classmethod
    def _service_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise ValueError(f"{url!r} is not a service URL: http(s)://host[:port][/prefix]")
        try:
            parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
        except ValueError as exc:
            raise ValueError(f"{url!r} is not a service URL: {exc}") from None
        return url.strip().rstrip("/")

    @field_validator("models")
    @classmethod
    def _model_names(cls, models: dict[str, NamedModelSetting]) -> dict[str, NamedModelSetting]:
        for name in models:
            if name in RESERVED_MODEL_NAMES:
                raise ValueError(f"{name!r} names the model setting's model; choose another name")
            if not re.fullmatch(MODEL_NAME_PATTERN, name):
                raise ValueError(
                    f"model name {name!r}: letters, digits, '.', '_' and '-', at most 100"
                )
        return models

    @model_validator(mode="after")
    def _inbox_models_exist(self) -> Settings:
        for inbox in self.inboxes:
            problem = unknown_model(inbox.model, self.models)
            if problem is not None:
                raise ValueError(f"inbox {inbox.path}: {problem}")
        return self

    @field_validator("roles", mode="before")
    @classmethod
    def _split_roles(cls, value: Any) -> Any:
        return _split_nested(value)

    @field_validator("roles")
    @classmethod
    def _some_roles(cls, roles: list[Role]) -> list[Role]:
        if not roles:
            raise ValueError(f"at least one role is needed: {', '.join(ROLES)}")
        return list(dict.fromkeys(roles))

    @field_validator("num_speakers", "min_speakers", "max_speakers")
    @classmethod
    def _speaker_counts(cls, count: int | None, info: ValidationInfo) -> int | None:
        # Each count is checked against the fields before it (pydantic validates in order), so
        # that the error names the count that breaks the rule.
        counts = {name: info.data.get(name) for name in SPEAKER_COUNTS}
        counts[str(info.field_name)] = count
        problem = speaker_count_problem(info.data.get("diarize"), *counts.values())
        if problem is not None:
            raise ValueError(problem)
        return count

    @field_validator("subtitle_min_s")
    @classmethod
    def _shorter_than_longest(cls, seconds: float, info: ValidationInfo) -> float:
        problem = subtitle_rules_problem(seconds, info.data.get("subtitle_max_s"))
        if problem is not None:
            raise ValueError(problem)
        return seconds

    @field_validator("media_extensions")
    @classmethod
    def _dotted_extensions(cls, extensions: list[str]) -> list[str]:
        return sorted({"." + e.lower().lstrip(".") for e in extensions if e.strip(". ")})

    @field_validator("inboxes")
    @classmethod
    def _distinct_inboxes(cls, inboxes: list[InboxSettings]) -> list[InboxSettings]:
        folders = [inbox.path.expanduser().resolve() for inbox in inboxes]
        for i, folder in enumerate(folders):
            for other in folders[i + 1 :]:
                if folder == other or folder.is_relative_to(other) or other.is_relative_to(folder):
                    raise ValueError(f"inboxes {folder} and {other} overlap; give each its own")
        return inboxes

    @field_validator("formats", mode="before")
    @classmethod
    def _split_formats(cls, value: Any) -> Any:
        return _split_nested(value)

    @field_validator("formats")
    @classmethod
    def _check_formats(cls, formats: list[str]) -> list[str]:
        return list(known_formats(formats))

    @field_validator("language")
    @classmethod
    def _known_language(cls, language: str | None) -> str | None:
        return known_language(language)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Each source reads the old names of renamed settings as the new ones, at its strength.
        return tuple(
            RenamingSource(source, where, ENV_PREFIX, flag_name)
            for source, where in (
                (init_settings, "flag"),
                (env_settings, "environment"),
                (_ConfigFileSource(settings_cls, init_settings, env_settings), "config file"),
            )
        )

    @model_validator(mode="wrap")
    @classmethod
    def _note_renamed(cls, data: Any, handler: ModelWrapValidatorHandler[Settings]) -> Settings:
        """Keep what the sources renamed (renamed_settings), for the entry point to log."""
        notes = data.pop(RENAMED_KEY, {}) if isinstance(data, dict) else {}
        settings = handler(data)
        settings._renamed = dict(notes)
        return settings

    @property
    def renamed(self) -> dict[str, str]:
        """Deprecated names given for these settings, each with what to give instead."""
        return dict(self._renamed)

    def api_roots(self) -> list[Path]:
        """Where files named over HTTP may live (symlinks resolved): the inboxes unless set."""
        roots = self.allowed_roots or [inbox.path for inbox in self.inboxes]
        return [root.expanduser().resolve() for root in roots]

    def read_roots(self) -> list[Path]:
        """Every folder whose files a job may read or serve (symlinks resolved): the inboxes with
        their done and failed folders, the uploads folder, allowed_roots and link_roots."""
        folders = [inbox.path for inbox in self.inboxes] + [self.uploads_dir]
        for inbox in self.inboxes:
            root = inbox.path.expanduser()
            folders += [root / d for d in (inbox.done_dir, inbox.failed_dir) if d is not None]
        folders += self.allowed_roots + self.link_roots
        return [folder.expanduser().resolve() for folder in folders]

    def job_options(self) -> JobOptions:
        """The options a job gets when its submitter says nothing else."""
        return JobOptions(
            language=self.language,
            task=self.task,
            beam_size=self.beam_size,
            vad_filter=self.vad_filter,
            word_timestamps=self.word_timestamps,
            initial_prompt=self.initial_prompt,
            hotwords=self.hotwords,
            diarize=self.diarize,
            num_speakers=self.num_speakers,
            min_speakers=self.min_speakers,
            max_speakers=self.max_speakers,
            **{name: getattr(self, name) for name in (*SUBTITLE_RULES, *GUARDS)},
            language_detection_segments=self.language_detection_segments,
            language_detection_threshold=self.language_detection_threshold,
            expected_languages=tuple(self.expected_languages or ()),
            formats=known_formats(self.formats),  # as the validator left them, typed as formats
            output_dir=str(self.output_dir.resolve()) if self.output_dir else None,
        )


class _ConfigFileSource(PydanticBaseSettingsSource):
    """The TOML file named by the config_file setting (itself from a flag or the environment)."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        *locators: PydanticBaseSettingsSource,
    ) -> None:
        super().__init__(settings_cls)
        self.locators = locators

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the whole file at once

    def __call__(self) -> dict[str, Any]:
        path = next(
            (src().get("config_file") for src in self.locators if src().get("config_file")), None
        )
        if path is None:
            return {}
        path = Path(path).expanduser()
        if not path.is_file():
            raise SettingError("config_file", f"no such file: {path}")
        try:
            values: dict[str, Any] = TomlConfigSettingsSource(self.settings_cls, toml_file=path)()
        except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError
            raise SettingError("config_file", f"{path} is not valid TOML: {exc}") from exc
        return values


def load_settings(**overrides: Any) -> Settings:
    """Settings from flags (overrides), environment and config file; SettingError when one is bad."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "?"
        message = first["msg"].removeprefix("Value error, ")
        if first.get("input") is not None and first["type"] not in ("value_error",):
            message = f"{message} (got {first['input']!r})"
        raise SettingError(name, message) from exc


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
