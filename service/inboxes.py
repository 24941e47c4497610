"""The inboxes from the settings: checked at start-up and turned into the watcher's Inbox values."""

from __future__ import annotations

import os
from pathlib import Path

from whisper_transcriber.db.values import (
    GUARDS,
    LANGUAGE_DETECTION,
    MAX_PROMPT_CHARS,
    SPEAKER_COUNTS,
    SUBTITLE_RULES,
    JobOptions,
    speaker_count_problem,
    subtitle_rules_problem,
    with_speaker_counts,
)
from whisper_transcriber.service.settings import (
    DEFAULT_INBOX,
    InboxSettings,
    SettingError,
    Settings,
)
from whisper_transcriber.watcher.filters import FileFilter
from whisper_transcriber.watcher.spec import Inbox
from whisper_transcriber.worker.confinement import Confinement

# A vocabulary file past this is not one (a wrong path given): refused without reading it all.
VOCABULARY_MAX_BYTES = 64 * 1024


def ensure_inboxes(settings: Settings) -> None:
    """The default ./inbox is made on first run; any other inbox must already be a readable folder.

    Also checks what only the whole list can tell (two inboxes of one name)."""
    inboxes_from_settings(settings)
    for inbox in settings.inboxes:
        folder = inbox.path.expanduser()
        if folder == DEFAULT_INBOX and not folder.exists():
            folder.mkdir(parents=True)
        if not folder.is_dir():
            raise SettingError("inboxes", f"inbox {folder} is not an existing folder")
        try:  # reading it is the only honest test (ACLs, root squash on NFS, ...)
            with os.scandir(folder) as entries:
                next(entries, None)
        except OSError as exc:
            raise SettingError(
                "inboxes", f"inbox {folder} is not readable: {exc.strerror}"
            ) from exc


def confinement(settings: Settings) -> Confinement:
    """Where jobs may read, and where links in inboxes may lead (worker/confinement.py)."""
    return Confinement.of(settings.read_roots())


def file_filter(settings: Settings) -> FileFilter:
    return FileFilter.of(settings.media_extensions, settings.ignore_patterns)


def inboxes_from_settings(settings: Settings) -> list[Inbox]:
    """Each inbox with its options over the service's defaults, folders resolved."""
    inboxes = [_inbox(config, settings) for config in settings.inboxes]
    names = [inbox.name for inbox in inboxes]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate is not None:
        raise SettingError("inboxes", f"two inboxes are named {duplicate!r}; give them names")
    for inbox in inboxes:
        for folder in (inbox.outbox, inbox.done_dir, inbox.failed_dir):
            if folder is None:
                continue
            other = next(
                (o for o in inboxes if o is not inbox and folder.is_relative_to(o.root)), None
            )
            if other is not None:
                raise SettingError(
                    "inboxes",
                    f"{folder} (an output, done or failed folder of inbox {inbox.name}) lies "
                    f"inside inbox {other.name}: what goes there would be taken as input",
                )
    return inboxes


def vocabulary(config: InboxSettings) -> list[str]:
    """The terms of the inbox's vocabulary file, each once, in its order; SettingError for a file
    that cannot be read, is not text, or holds more than the model reads."""
    if config.vocabulary is None:
        return []
    path = config.vocabulary.expanduser()
    try:
        with path.open("rb") as file:
            raw = file.read(VOCABULARY_MAX_BYTES + 1)
        text = raw.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingError("inboxes", f"inbox {config.path}: vocabulary {path}: {exc}") from exc
    terms = [line.strip() for line in text.splitlines()]
    kept = list(dict.fromkeys(t for t in terms if t and not t.startswith("#")))
    for term in kept:
        if any(ord(c) < 32 for c in term):
            raise SettingError("inboxes", f"inbox {config.path}: vocabulary {path}: {term!r}")
    joined = ", ".join(kept)
    if len(raw) > VOCABULARY_MAX_BYTES or len(joined) > MAX_PROMPT_CHARS:
        raise SettingError(
            "inboxes",
            f"inbox {config.path}: vocabulary {path} holds more than the model reads (at most "
            f"{MAX_PROMPT_CHARS} characters of terms, about 223 tokens): keep this library's "
            "names and jargon",
        )
    return kept


def _inbox(config: InboxSettings, settings: Settings) -> Inbox:
    root = config.path.expanduser().resolve()
    defaults = settings.job_options()
    overrides: dict[str, object] = {"output_dir": None, "media_library": config.media_library}
    if config.language is not None:
        overrides["language"] = config.language
    if config.task is not None:
        overrides["task"] = config.task
    if config.model is not None:
        overrides["model"] = config.model
    if config.initial_prompt is not None:
        overrides["initial_prompt"] = config.initial_prompt
    hotwords = ", ".join(filter(None, [config.hotwords or defaults.hotwords, *vocabulary(config)]))
    if hotwords:
        overrides["hotwords"] = hotwords
    if config.formats is not None:
        overrides["formats"] = tuple(config.formats)
    elif config.media_library:
        overrides["formats"] = ("srt",)  # what media servers show; more when asked
    if config.expected_languages is not None and config.language is None:
        overrides["language"] = None  # detected among the inbox's languages, not the service's
    for name in (
        "diarize",
        "vad_filter",
        *SPEAKER_COUNTS,
        *SUBTITLE_RULES,
        *LANGUAGE_DETECTION,
        *GUARDS,
    ):
        if getattr(config, name) is not None:
            overrides[name] = getattr(config, name)
    merged = with_speaker_counts(defaults.model_dump(), overrides)
    problem = speaker_count_problem(
        *(merged[name] for name in ("diarize", *SPEAKER_COUNTS))
    ) or subtitle_rules_problem(merged["subtitle_min_s"], merged["subtitle_max_s"])
    if problem is not None:
        raise SettingError("inboxes", f"inbox {config.path}: {problem}")
    # Sidecars belong beside the video, whatever the service's output_dir says.
    outbox = config.outbox if config.media_library else config.outbox or settings.output_dir
    moves_done, moves_failed = config.on_success == "move", config.on_failure == "move"
    return Inbox(
        root=root,
        name=config.name or root.name,
        options=JobOptions.model_validate(merged),
        recursive=config.recursive,
        observer=config.observer,
        poll_interval_s=config.poll_interval_s,
        outbox=_resolve(root, outbox),
        done_dir=_resolve(root, config.done_dir or Path("done")) if moves_done else None,
        failed_dir=_resolve(root, config.failed_dir or Path("failed")) if moves_failed else None,
    )


def _resolve(root: Path, folder: Path | None) -> Path | None:
    """An inbox's folder setting; a relative one is inside the inbox."""
    return (root / folder.expanduser()).resolve() if folder is not None else None
