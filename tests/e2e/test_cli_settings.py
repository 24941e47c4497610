"""A bad setting stops start-up with one readable line that names it, never a traceback."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import typer.main

from tests.helpers.cli import clean_env, run_cli
from whisper_transcriber.service.cli import app
from whisper_transcriber.service.cli_flags import PARAM_TO_SETTING, flag_decls
from whisper_transcriber.service.settings import Settings, flag_name


@pytest.mark.parametrize(
    ("args", "env", "setting", "detail"),
    [
        (["--formats", "txt,doc"], {}, "formats", "unknown format 'doc'"),
        ([], {"WHISPER_TRANSCRIBER_FORMATS": "pdf"}, "formats", "unknown format 'pdf'"),
        (["--database-url", "postgresql://root@127.0.0.1:1/nowhere"], {}, "database_url", "cannot connect"),
        (["--database-url", "mysql://x@localhost/db"], {}, "database_url", "unsupported database"),
        (["--model", "./no-such-model"], {}, "model", "no model folder at"),
        (["--model", "not-a-size"], {}, "model", "neither a model folder nor"),
        (["--device", "gpu"], {}, "device", "'auto', 'cpu' or 'cuda'"),
        (["--workers", "0"], {}, "workers", "greater than or equal to 1"),
        (["--config", "missing.toml"], {}, "config_file", "no such file"),
        (["--workers", "many"], {}, "workers", "valid int"),  # Typer's wording: "valid int" (0.27), "valid integer"
        (["--compute-type", "float16", "--device", "cpu"], {}, "compute_type", "not supported on cpu"),
        (["--device", "cuda"], {}, "device", "sees no CUDA device"),
    ],
)  # fmt: skip
def test_bad_setting_is_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], setting: str, detail: str
) -> None:
    result = run_cli("transcribe", "x.wav", *args, cwd=tmp_path, env=clean_env(**env))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: setting {setting} ("), lines[0]
    assert detail in lines[0]


def test_model_folder_without_model_files(tmp_path: Path) -> None:
    (tmp_path / "empty-model").mkdir()
    result = run_cli("transcribe", "x.wav", "--model", "empty-model", cwd=tmp_path)
    assert result.returncode == 2
    assert "missing model.bin, config.json" in result.stderr


# -- flags made from the settings (service/cli_flags.py) ----------------------------------------


# The list settings among the flagged ones: a repeatable flag each.
REPEATABLE = {"inboxes", "roles", "formats", "expected_languages"}


def _setting_params() -> list[tuple[str, Any]]:
    """(command path, parameter) for every setting flag of every command."""
    found: list[tuple[str, Any]] = []

    def walk(command: Any, path: str) -> None:
        for param in command.params:
            if param.name and PARAM_TO_SETTING.get(param.name, param.name) in Settings.model_fields:
                found.append((path, param))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(app), "")
    return found


def test_every_setting_flag_is_its_setting() -> None:
    """Its name, help and kind come from the setting; unset, it leaves the setting to the
    environment, the config file and the default."""
    params = _setting_params()
    assert {path for path, _ in params} >= {"serve", "transcribe", "jobs", "retry", "db upgrade"}
    for path, param in params:
        assert param.param_type_name == "option", (path, param.name)
        assert param.default is None, (path, param.name)
        assert param.name is not None
        if param.name in PARAM_TO_SETTING:  # a renamed setting's old flag: works, not shown
            assert param.hidden and param.opts == [flag_name(param.name)], (path, param.name)
            continue
        field = Settings.model_fields[param.name]
        assert [*param.opts, *param.secondary_opts] == flag_decls(param.name), (path, param.name)
        assert param.help is not None and param.help.startswith(field.description or "?"), (
            path,
            param.name,
        )
        assert param.multiple == (param.name in REPEATABLE), (path, param.name)


def test_the_old_flag_and_variable_still_work_and_say_so(tmp_path: Path) -> None:
    """--job-timeout and WHISPER_TRANSCRIBER_JOB_TIMEOUT set job_timeout_s, with one warning
    each in the log (serve stops at the port in use, after reading its settings)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        flag = run_cli("serve", "--port", port, "--job-timeout", "5", cwd=tmp_path)
        env = clean_env(WHISPER_TRANSCRIBER_JOB_TIMEOUT="5")
        variable = run_cli("serve", "--port", port, cwd=tmp_path, env=env)
        bad = run_cli("serve", "--port", port, "--job-timeout", "0", cwd=tmp_path)
    for result, warning in (
        (flag, "job_timeout (--job-timeout) is deprecated; give job_timeout_s (--job-timeout-s)"),
        (variable, "WHISPER_TRANSCRIBER_JOB_TIMEOUT is deprecated; give "
                   "WHISPER_TRANSCRIBER_JOB_TIMEOUT_S instead"),
    ):  # fmt: skip
        assert result.returncode == 2, result.stderr
        logged, error = result.stderr.strip().splitlines()
        assert "WARNING" in logged and warning in logged, logged
        assert error.endswith("is already in use"), error
    # A bad value under the old name is refused as any other, naming the setting.
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: setting job_timeout_s (--job-timeout-s or "), bad.stderr
