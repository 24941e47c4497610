"""A bad setting stops start-up with one readable line that names it, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import clean_env, run_cli


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
