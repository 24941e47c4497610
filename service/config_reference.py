"""docs/configuration.md, generated from the settings themselves so that it cannot drift from them.

    python -m whisper_transcriber.service.config_reference > docs/configuration.md

tests/test_config_reference.py fails when the committed file is not what this renders.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from whisper_transcriber.service.settings import ENV_PREFIX, InboxSettings, Settings

INTRO = f"""# Configuration reference

Generated from `service/settings.py` by `python -m whisper_transcriber.service.config_reference`; do not edit by hand.

Every setting can be given, from weakest to strongest, in a TOML config file (`--config` or
`{ENV_PREFIX}CONFIG_FILE`; keys are the setting names), as an environment variable (the prefix
`{ENV_PREFIX}` and the name in capitals), or as a flag where one is listed. Lists are written
`a,b,c` in the environment and on flags (or as a JSON list), and as TOML arrays in the file. A bad
value stops start-up with one line that names the setting.
"""

INBOX_INTRO = """## Inbox options

Each inbox is a path, `PATH?option=value&...` (a flag or environment item), or an `[[inboxes]]`
table in the config file. What an inbox leaves unset comes from the service's settings.
"""


def render() -> str:
    flags = _serve_flags()
    lines = [INTRO, "## Settings", ""]
    lines += [
        "| setting | environment variable | flag | default | meaning |",
        "|---|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        env = f"`{ENV_PREFIX}{name.upper()}`"
        flag = f"`{flags[name]}`" if name in flags else ""
        lines.append(f"| `{name}` | {env} | {flag} | {_default(field)} | {_meaning(field)} |")
    lines += ["", INBOX_INTRO, "| option | default | meaning |", "|---|---|---|"]
    for name, field in InboxSettings.model_fields.items():
        lines.append(f"| `{name}` | {_default(field)} | {_meaning(field)} |")
    return "\n".join(lines) + "\n"


def _serve_flags() -> dict[str, str]:
    """Setting name -> the `serve` flag that sets it, read from the CLI itself."""
    import typer.main

    from whisper_transcriber.service.cli import PARAM_TO_SETTING, app

    command = typer.main.get_command(app)
    serve = command.commands["serve"]  # type: ignore[attr-defined]
    flags = {}
    for param in serve.params:
        if param.name and param.opts:
            flags[PARAM_TO_SETTING.get(param.name, param.name)] = " / ".join(
                [*param.opts, *getattr(param, "secondary_opts", [])]
            )
    return flags


def _default(field: FieldInfo) -> str:
    value = field.default
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "unset"
    if value in ([], ()):
        return "empty"
    return f"`{_plain(value)}`"


def _plain(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(_plain(item) for item in value)
    if isinstance(value, BaseModel) and hasattr(value, "path"):
        return _plain(value.path)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _meaning(field: FieldInfo) -> str:
    text = field.description or ""
    choices = _choices(field.annotation)
    if choices and not all(choice in text for choice in choices):
        text = f"{text}; one of {', '.join(choices)}" if text else f"one of {', '.join(choices)}"
    return text.replace("|", "\\|")


def _choices(annotation: Any) -> list[str]:
    """The values a Literal field (or a list of one) accepts."""
    from typing import Literal, get_args, get_origin

    if get_origin(annotation) is Literal:
        return [str(arg) for arg in get_args(annotation)]
    found: list[str] = []
    for arg in get_args(annotation):
        found += _choices(arg)
    return found


if __name__ == "__main__":
    print(render(), end="")
