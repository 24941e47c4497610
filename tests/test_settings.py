"""Settings: defaults, environment, config file and flags, in that order of strength."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.settings import DEFAULT_DATABASE_URL, SettingError, load_settings
from worker.layout import Layout, default_layout


def test_defaults() -> None:
    settings = load_settings()
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.inboxes == [Path("inbox")]
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
    assert settings.inboxes == [Path("/a"), Path("/b")]
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
