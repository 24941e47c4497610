"""docs/configuration.md is what the settings say: regenerate it when a setting changes."""

from __future__ import annotations

from tests.helpers.paths import REPOSITORY
from whisper_transcriber.service.config_reference import render
from whisper_transcriber.service.settings import ENV_PREFIX, Settings

REFERENCE = REPOSITORY / "docs" / "configuration.md"


def test_configuration_reference_is_current() -> None:
    assert REFERENCE.read_text() == render(), (
        "docs/configuration.md is stale: run python -m whisper_transcriber.service.config_reference > "
        "docs/configuration.md"
    )


def test_every_setting_is_documented_with_its_variable() -> None:
    text = render()
    for name in Settings.model_fields:
        assert f"| `{name}` | `{ENV_PREFIX}{name.upper()}` |" in text
    assert "| `roles` | `WHISPER_TRANSCRIBER_ROLES` | `--role` | `api,watch,work` |" in text
