"""Settings that were renamed (to carry their unit): their old names still read, and deprecated.

An old name is read wherever the new one is (a flag, the environment, the config file, a keyword)
and stands for the new one at that source's strength, so that an old environment variable still
beats the config file. Where one source gives both names, the new one wins and the old one is
ignored. The settings only record what they met; the entry point logs it, once per process,
after it has set up logging (log_renamed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from pydantic_settings import EnvSettingsSource, PydanticBaseSettingsSource

# Old name -> new name.
RENAMED: Mapping[str, str] = {"job_timeout": "job_timeout_s"}
# The key under which a source hands what it renamed to Settings (never a setting's name).
RENAMED_KEY = "__renamed__"

log = logging.getLogger(__name__)
# Warnings already logged by this process.
_logged: set[str] = set()


class RenamingSource(PydanticBaseSettingsSource):
    """Another source's values with old names read as the new ones; what was renamed, how it
    was given and how to give it now, under RENAMED_KEY."""

    def __init__(
        self,
        source: PydanticBaseSettingsSource,
        where: str,
        env_prefix: str,
        flag_name: Callable[[str], str],
    ) -> None:
        super().__init__(source.settings_cls)
        self.source = source
        self.where = where  # "flag", "environment" or "config file"
        self.env_prefix = env_prefix
        self.flag_name = flag_name

    def _set_current_state(self, state: dict[str, Any]) -> None:
        super()._set_current_state(state)
        self.source._set_current_state(state)

    def _set_settings_sources_data(self, states: dict[str, dict[str, Any]]) -> None:
        super()._set_settings_sources_data(states)
        self.source._set_settings_sources_data(states)

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ renames the whole source at once

    def __call__(self) -> dict[str, Any]:
        values = dict(self.source())
        if isinstance(self.source, EnvSettingsSource):
            # The environment source reads only the current names: the old ones are read here.
            for old in RENAMED:
                variable = self._variable(old)
                key = variable if self.source.case_sensitive else variable.lower()
                if self.source.env_vars.get(key) is not None:
                    values[old] = self.source.env_vars[key]
        notes: dict[str, str] = {}
        for old, new in RENAMED.items():
            if old not in values:
                continue
            value = values.pop(old)
            ignored = new in values
            if not ignored:
                values[new] = value
            notes[f"{old}@{self.where}"] = self._note(old, new, ignored)
        if notes:
            values[RENAMED_KEY] = notes
        return values

    def _variable(self, name: str) -> str:
        return f"{self.env_prefix}{name.upper()}"

    def _note(self, old: str, new: str, ignored: bool) -> str:
        if self.where == "environment":
            given, wanted = self._variable(old), self._variable(new)
        elif self.where == "flag":
            given, wanted = f"{old} ({self.flag_name(old)})", f"{new} ({self.flag_name(new)})"
        else:
            given, wanted = f"{old} in the {self.where}", new
        if ignored:
            return f"{given} is deprecated and ignored, as {wanted} is given too"
        now = "" if new in wanted else f" (the setting is now {new})"
        return f"{given} is deprecated; give {wanted} instead{now}"


def log_renamed(notes: Mapping[str, str]) -> None:
    """Log each deprecated name the settings met, once per process."""
    for key in sorted(notes):
        if key not in _logged:
            _logged.add(key)
            log.warning("%s", notes[key])
