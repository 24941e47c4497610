"""docs/configuration.md, generated from the settings themselves so that it cannot drift from them.

    python -m whisper_transcriber.service.config_reference > docs/configuration.md

tests/unit/test_config_reference.py fails when the committed file is not what this renders.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from whisper_transcriber.service.cli_flags import flag_decls, meaning
from whisper_transcriber.service.renamed_settings import RENAMED
from whisper_transcriber.service.settings import (
    ENV_PREFIX,
    FLAGGED,
    InboxSettings,
    Settings,
    flag_name,
)

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


RENAMED_INTRO = """## Renamed settings

An old name still works wherever the new one does (a flag, an environment variable, a config file
key) and logs a deprecation warning at start-up. It counts as what it stands for where it is given
(a flag over the environment over the config file); where one place gives both names, the new one
wins and the old one is ignored, with a warning.
"""


def render() -> str:
    lines = [INTRO, "## Settings", ""]
    lines += [
        "| setting | environment variable | flag | default | meaning |",
        "|---|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        env = f"`{ENV_PREFIX}{name.upper()}`"
        flag = f"`{' / '.join(flag_decls(name))}`" if name in FLAGGED else ""
        lines.append(f"| `{name}` | {env} | {flag} | {_default(field)} | {_meaning(field)} |")
    lines += ["", INBOX_INTRO, "| option | default | meaning |", "|---|---|---|"]
    for name, field in InboxSettings.model_fields.items():
        lines.append(f"| `{name}` | {_default(field)} | {_meaning(field)} |")
    lines += [
        "",
        RENAMED_INTRO,
        "| old name | environment variable | flag | now |",
        "|---|---|---|---|",
    ]
    for old, new in RENAMED.items():
        flag = f"`{flag_name(old)}`" if new in FLAGGED else ""
        lines.append(f"| `{old}` | `{ENV_PREFIX}{old.upper()}` | {flag} | `{new}` |")
    return "\n".join(lines) + "\n"


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
    return meaning(field).replace("|", "\\|")


if __name__ == "__main__":
    print(render(), end="")
