"""Settings: defaults, environment, config file and flags, in that order of strength."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from whisper_transcriber.api.app_context import DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_UPLOADS_DIR
from whisper_transcriber.db.job_store import DEFAULT_MAX_ATTEMPTS, LEASE_S
from whisper_transcriber.db.values import RETRY_BASE_DELAY_S, RETRY_MAX_DELAY_S
from whisper_transcriber.service import renamed_settings
from whisper_transcriber.service.settings import (
    DEFAULT_DATABASE_URL,
    SettingError,
    Settings,
    load_settings,
)
from whisper_transcriber.watcher.spec import POLL_INTERVAL_S
from whisper_transcriber.watcher.stability import SETTLE_S
from whisper_transcriber.worker.defaults import BUNDLED_MODEL, STOP_GRACE_S
from whisper_transcriber.worker.layout import Layout, default_layout


def test_defaults() -> None:
    settings = load_settings()
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert [inbox.path for inbox in settings.inboxes] == [Path("inbox")]
    assert settings.output_dir is None
    assert settings.formats == ["txt", "srt", "vtt", "json", "tsv"]
    assert settings.model == "bundled"
    assert settings.device == "auto" and settings.compute_type == "auto"
    options = settings.job_options()
    assert options.beam_size == 5 and not options.vad_filter and options.language is None


def test_environment_with_prefix_and_comma_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHISPER_TRANSCRIBER_FORMATS", "SRT, txt")
    monkeypatch.setenv("WHISPER_TRANSCRIBER_INBOXES", "/a,/b")
    monkeypatch.setenv("WHISPER_TRANSCRIBER_WORKERS", "3")
    monkeypatch.setenv("WHISPER_TRANSCRIBER_VAD_FILTER", "true")
    settings = load_settings()
    assert settings.formats == ["srt", "txt"]
    assert [inbox.path for inbox in settings.inboxes] == [Path("/a"), Path("/b")]
    assert settings.workers == 3
    assert settings.job_options().vad_filter


def test_config_file_below_environment_below_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "settings.toml"
    config.write_text('port = 7000\nworkers = 5\nformats = ["json"]\nlanguage = "de"\n')
    monkeypatch.setenv("WHISPER_TRANSCRIBER_CONFIG_FILE", str(config))
    monkeypatch.setenv("WHISPER_TRANSCRIBER_WORKERS", "4")
    settings = load_settings(port=7100)
    assert settings.port == 7100  # flag over file
    assert settings.workers == 4  # environment over file
    assert settings.formats == ["json"] and settings.language == "de"  # from the file


def test_config_file_from_flag(tmp_path: Path) -> None:
    config = tmp_path / "settings.toml"
    config.write_text('output_dir = "/srv/out"\n')
    assert load_settings(config_file=config).output_dir == Path("/srv/out")


@pytest.mark.parametrize(
    ("content", "setting", "detail"),
    [
        ("port = [", "config_file", "not valid TOML"),
        ("colour = 1\n", "colour", "Extra inputs are not permitted"),
        ('formats = ["doc"]\n', "formats", "unknown format 'doc'"),
    ],
)
def test_bad_config_file_names_the_setting(
    tmp_path: Path, content: str, setting: str, detail: str
) -> None:
    config = tmp_path / "settings.toml"
    config.write_text(content)
    with pytest.raises(SettingError) as raised:
        load_settings(config_file=config)
    assert raised.value.setting == setting
    assert detail in str(raised.value)


def test_error_message_says_how_to_set_it() -> None:
    with pytest.raises(SettingError, match=r"setting port \(--port or WHISPER_TRANSCRIBER_PORT\)"):
        load_settings(port=0)


@pytest.mark.parametrize(
    ("device", "cores", "workers", "threads", "expected"),
    [
        ("cpu", 2, None, None, Layout(2, 1)),
        ("cpu", 8, None, None, Layout(8, 1)),
        ("cpu", 8, None, 2, Layout(4, 2)),
        ("cpu", 8, 2, None, Layout(2, 4)),
        ("cpu", 1, None, None, Layout(1, 1)),
        ("cuda", 16, None, None, Layout(1, 4)),
        ("cuda", 16, 2, 1, Layout(2, 1)),
    ],
)
def test_default_layout(
    device: str, cores: int, workers: int | None, threads: int | None, expected: Layout
) -> None:
    assert default_layout(device, cores, workers, threads) == expected


def test_inboxes_with_their_own_options_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "settings.toml"
    config.write_text(
        'language = "en"\n'
        "[[inboxes]]\n"
        'path = "/srv/talks"\n'
        "recursive = false\n"
        'language = "de"\n'
        'formats = ["srt", "vtt"]\n'
        'outbox = "/srv/out"\n'
        'on_success = "move"\n'
        "[[inboxes]]\n"
        'path = "/mnt/nas/films"\n'
        'observer = "polling"\n'
        "poll_interval_s = 30\n"
        "media_library = true\n"
    )
    talks, films = load_settings(config_file=config).inboxes
    assert (talks.recursive, talks.language, talks.formats) == (False, "de", ["srt", "vtt"])
    assert (talks.outbox, talks.on_success, talks.on_failure) == (Path("/srv/out"), "move", "keep")
    assert (films.observer, films.poll_interval_s, films.media_library) == ("polling", 30, True)
    assert films.language is None  # the service's default (en) applies when the job is planned


def test_inbox_options_in_a_flag_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "WHISPER_TRANSCRIBER_INBOXES", "/a?observer=polling&poll_interval_s=3,/b?formats=srt+txt"
    )
    a, b = load_settings().inboxes
    assert (a.path, a.observer, a.poll_interval_s) == (Path("/a"), "polling", 3.0)
    assert (b.path, b.formats) == (Path("/b"), ["srt", "txt"])
    [flagged] = load_settings(inboxes=["/c?recursive=false&on_failure=move"]).inboxes
    assert (flagged.recursive, flagged.on_failure) == (False, "move")


@pytest.mark.parametrize(
    ("inboxes", "detail"),
    [
        (["/a?colour=red"], "Extra inputs are not permitted"),
        (["/a?observer=fsevents"], "'native' or 'polling'"),
        (["/a?formats=srt+pdf"], "unknown format 'pdf'"),
        (["/a?media_library=true&on_success=move"], "a media library is read-only"),
        (["/a", "/a/sub"], "overlap"),
    ],
)
def test_bad_inbox_options_name_the_setting(inboxes: list[str], detail: str) -> None:
    with pytest.raises(SettingError, match="inboxes") as caught:
        load_settings(inboxes=inboxes)
    assert detail in str(caught.value)


def test_media_extensions_and_ignore_patterns_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHISPER_TRANSCRIBER_MEDIA_EXTENSIONS", "WAV,.mka")
    monkeypatch.setenv("WHISPER_TRANSCRIBER_IGNORE_PATTERNS", "*.skip,drafts")
    settings = load_settings()
    assert settings.media_extensions == [".mka", ".wav"]
    assert settings.ignore_patterns == ["*.skip", "drafts"]


def test_roles_from_flags_environment_and_their_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().roles == ["api", "watch", "work"]
    assert load_settings(roles=["api,watch"]).roles == ["api", "watch"]
    assert load_settings(roles=["work", "work"]).roles == ["work"]
    monkeypatch.setenv("WHISPER_TRANSCRIBER_ROLES", "work")
    assert load_settings().roles == ["work"]
    with pytest.raises(
        SettingError, match=r"^setting roles \(--role or WHISPER_TRANSCRIBER_ROLES\)"
    ):
        load_settings(roles=["cook"])


def test_worker_recycling_settings() -> None:
    settings = load_settings(worker_max_jobs=10, worker_max_memory_mb=512)
    assert (settings.worker_max_jobs, settings.worker_max_memory_mb) == (10, 512)
    with pytest.raises(SettingError, match="worker_max_jobs"):
        load_settings(worker_max_jobs=0)


@pytest.mark.parametrize(
    ("settings", "setting", "detail"),
    [
        ({"api_key": "schlüssel"}, "api_key", "printable ASCII"),
        ({"api_key": "line\nbreak"}, "api_key", "printable ASCII"),
        ({"api_key": " padded"}, "api_key", "must not begin or end with a space"),
        ({"allowed_hosts": "example.org:9000"}, "allowed_hosts", "without scheme or port"),
        ({"allowed_hosts": "https://example.org"}, "allowed_hosts", "without scheme or port"),
        ({"allowed_origins": "example.org"}, "allowed_origins", "is not an origin"),
        ({"allowed_origins": "https://example.org/app"}, "allowed_origins", "is not an origin"),
        ({"http_max_connections": 0}, "http_max_connections", "greater than or equal to 1"),
        ({"http_header_timeout_s": 0}, "http_header_timeout_s", "greater than 0"),
    ],
)
def test_http_settings_are_checked(settings: dict[str, object], setting: str, detail: str) -> None:
    with pytest.raises(SettingError, match=rf"^setting {setting} \(") as raised:
        load_settings(**settings)
    assert detail in str(raised.value)
    if setting == "api_key":
        assert str(settings["api_key"]) not in str(raised.value)  # never echoed


def test_http_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHISPER_TRANSCRIBER_ALLOWED_HOSTS", "Transcribe.Example.org, .lan.example")
    monkeypatch.setenv("WHISPER_TRANSCRIBER_ALLOWED_ORIGINS", "https://Bazarr.example.org/")
    monkeypatch.setenv("WHISPER_TRANSCRIBER_API_KEY", "a key with spaces-and_punctuation!")
    settings = load_settings()
    assert settings.allowed_hosts == ["transcribe.example.org", ".lan.example"]
    assert settings.allowed_origins == ["https://bazarr.example.org"]
    assert settings.api_key is not None
    assert (settings.http_header_timeout_s, settings.http_keepalive_timeout_s) == (10.0, 5.0)
    assert (settings.http_body_idle_timeout_s, settings.http_max_connections) == (60.0, 500)


# -- renamed settings: job_timeout is now job_timeout_s -----------------------------------------

DEPRECATION_LOGGER = "whisper_transcriber.service.renamed_settings"


@pytest.fixture
def deprecations(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> Callable[[Settings], list[str]]:
    """What the entry point logs about a settings' deprecated names (as a fresh process would)."""
    monkeypatch.setattr(renamed_settings, "_logged", set())

    def logged(settings: Settings) -> list[str]:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=DEPRECATION_LOGGER):
            renamed_settings.log_renamed(settings.renamed)
        return [r.getMessage() for r in caplog.records if r.name == DEPRECATION_LOGGER]

    return logged


def test_the_new_name_is_read_with_no_warning(
    monkeypatch: pytest.MonkeyPatch, deprecations: Callable[[Settings], list[str]]
) -> None:
    assert load_settings().job_timeout_s == 3600
    monkeypatch.setenv("WHISPER_TRANSCRIBER_JOB_TIMEOUT_S", "120")
    settings = load_settings()
    assert settings.job_timeout_s == 120 and deprecations(settings) == []
    assert not hasattr(settings, "job_timeout")


def test_the_old_environment_variable_still_works_and_is_logged_once(
    monkeypatch: pytest.MonkeyPatch, deprecations: Callable[[Settings], list[str]]
) -> None:
    monkeypatch.setenv("WHISPER_TRANSCRIBER_JOB_TIMEOUT", "90")
    settings = load_settings()
    assert settings.job_timeout_s == 90
    assert deprecations(settings) == [
        "WHISPER_TRANSCRIBER_JOB_TIMEOUT is deprecated; give WHISPER_TRANSCRIBER_JOB_TIMEOUT_S "
        "instead (the setting is now job_timeout_s)"
    ]
    assert deprecations(load_settings()) == []  # once per process


def test_the_old_keyword_and_config_key_still_work(
    tmp_path: Path, deprecations: Callable[[Settings], list[str]]
) -> None:
    flagged = load_settings(job_timeout=30)  # what the hidden --job-timeout flag passes
    assert flagged.job_timeout_s == 30
    assert deprecations(flagged) == [
        "job_timeout (--job-timeout) is deprecated; give job_timeout_s (--job-timeout-s) instead"
    ]
    config = tmp_path / "settings.toml"
    config.write_text("job_timeout = 45\n")
    from_file = load_settings(config_file=config)
    assert from_file.job_timeout_s == 45
    [line] = deprecations(from_file)
    assert line.startswith("job_timeout in the config file is deprecated; give job_timeout_s")


def test_both_names_in_one_place_the_new_one_wins(
    monkeypatch: pytest.MonkeyPatch, deprecations: Callable[[Settings], list[str]]
) -> None:
    monkeypatch.setenv("WHISPER_TRANSCRIBER_JOB_TIMEOUT", "90")
    monkeypatch.setenv("WHISPER_TRANSCRIBER_JOB_TIMEOUT_S", "60")
    settings = load_settings()
    assert settings.job_timeout_s == 60
    assert deprecations(settings) == [
        "WHISPER_TRANSCRIBER_JOB_TIMEOUT is deprecated and ignored, as "
        "WHISPER_TRANSCRIBER_JOB_TIMEOUT_S is given too"
    ]
    assert load_settings(job_timeout=5, job_timeout_s=7).job_timeout_s == 7


def test_an_old_name_keeps_the_strength_of_where_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment beats the config file, whichever name each uses; a flag beats both."""
    config = tmp_path / "settings.toml"
    config.write_text("job_timeout_s = 45\n")
    monkeypatch.setenv("WHISPER_TRANSCRIBER_CONFIG_FILE", str(config))
    monkeypatch.setenv("WHISPER_TRANSCRIBER_JOB_TIMEOUT", "90")
    assert load_settings().job_timeout_s == 90
    assert load_settings(job_timeout_s=10).job_timeout_s == 10


def test_a_bad_value_under_the_old_name_names_the_setting() -> None:
    with pytest.raises(SettingError, match=r"^setting job_timeout_s \(--job-timeout-s or "):
        load_settings(job_timeout=0)


def test_format_and_role_flags_take_comma_lists_and_repeats() -> None:
    settings = load_settings(formats=["txt,SRT", "vtt"], roles=["api,work", "watch"])
    assert settings.formats == ["txt", "srt", "vtt"]
    assert settings.roles == ["api", "work", "watch"]


def test_defaults_are_the_lower_modules_constants() -> None:
    """Each default is stated once: the settings refer to the constants their users default to."""
    settings = load_settings()
    assert settings.lease_s == LEASE_S and settings.max_attempts == DEFAULT_MAX_ATTEMPTS
    assert (settings.retry_delay_s, settings.retry_max_delay_s) == (
        RETRY_BASE_DELAY_S,
        RETRY_MAX_DELAY_S,
    )
    assert settings.settle_s == SETTLE_S and settings.shutdown_grace_s == STOP_GRACE_S
    assert settings.max_upload_mb * 2**20 == DEFAULT_MAX_UPLOAD_BYTES
    assert settings.model == BUNDLED_MODEL and settings.uploads_dir == DEFAULT_UPLOADS_DIR
    [inbox] = settings.inboxes
    assert (inbox.observer, inbox.poll_interval_s) == ("native", POLL_INTERVAL_S)


@pytest.mark.parametrize("seconds", ["inf", "1e308", "-inf"])
def test_durations_are_finite_and_within_a_century(seconds: str) -> None:
    for name in ("lease_s", "worker_stale_after_s", "job_retention_s"):
        with pytest.raises(SettingError, match=f"setting {name} .*(at most|greater than)"):
            load_settings(**{name: seconds})
    with pytest.raises(SettingError, match=r"setting inboxes .*(at most|greater than)"):
        load_settings(inboxes=[f"/tmp?poll_interval_s={seconds}"])


@pytest.mark.parametrize("name", ["a\x00b", "a\nb", "tab\there", " padded", "", "\x7f"])
def test_instance_name_is_printable_and_trimmed(name: str) -> None:
    with pytest.raises(SettingError, match="setting instance_name"):
        load_settings(instance_name=name)
    assert load_settings(instance_name='NAS <one> & "two"').instance_name == 'NAS <one> & "two"'


def test_check_names_a_bad_database_url_and_creates_no_database(tmp_path: Path) -> None:
    from whisper_transcriber.service.liveness import check_instance

    for url in ("notaurl", "mysql://x@localhost/db", "sqlite:///:memory:", "sqlite://"):
        with pytest.raises(SettingError, match="setting database_url"):
            check_instance(load_settings(database_url=url))
    missing = tmp_path / "missing" / "jobs.db"
    verdict = check_instance(load_settings(database_url=f"sqlite:///{missing}"))
    assert not verdict.healthy and verdict.lines == [
        f"instance {socket.gethostname()}: no database at {missing}"
    ]
    assert not missing.parent.exists()  # nothing made
    (tmp_path / "empty.db").touch()
    verdict = check_instance(load_settings(database_url=f"sqlite:///{tmp_path / 'empty.db'}"))
    assert not verdict.healthy and "has no worker registry" in verdict.lines[0]


def test_more_models_are_named_and_inboxes_name_only_those(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "WHISPER_TRANSCRIBER_MODELS",
        '{"accurate": {"model": "small", "compute_type": "int8"}, "f32": {"model": "bundled"}}',
    )
    settings = load_settings(inboxes=["/tmp/talks?model=accurate"])
    assert settings.models["accurate"].compute_type == "int8"
    assert settings.models["f32"].compute_type == "auto"
    assert settings.inboxes[0].model == "accurate"
    with pytest.raises(SettingError, match=r"unknown model 'large'; the models are: default, acc"):
        load_settings(inboxes=["/tmp/talks?model=large"])
    for reserved in ("default", "whisper-1"):
        with pytest.raises(SettingError, match="names the model setting's model"):
            load_settings(models={reserved: {"model": "small"}})
    with pytest.raises(SettingError, match="setting models"):
        load_settings(models={"../x": {"model": "small"}})
