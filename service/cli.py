"""The `whisper-transcriber` command. Each flag is a setting (see service/settings.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

# Typer's own exceptions, caught to print one line instead of a usage box.
from typer._click.exceptions import (
    BadParameter,
    ClickException,
    MissingParameter,
    NoArgsIsHelpError,
)

from whisper_transcriber.db.errors import QueueError
from whisper_transcriber.service.bootstrap import open_database, prepare
from whisper_transcriber.service.settings import SettingError, Settings, load_settings
from whisper_transcriber.worker.logs import configure_logging
from whisper_transcriber.worker.supervisor import PoolFailed

app = typer.Typer(
    name="whisper-transcriber",
    help="Self-hosted speech-to-text: watch folders, a durable queue and faster-whisper workers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")

# Each option's parameter name is the setting it sets; _settings(ctx) collects them from the context.
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML config file.")]
DatabaseOpt = Annotated[
    str | None, typer.Option("--database-url", help="sqlite:///file.db or postgresql://...")
]
InboxOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--inbox",
        help="Folder to watch (repeatable): PATH or 'PATH?observer=polling&language=de&...'.",
    ),
]
RoleOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--role",
        help="Run only these parts (repeatable, or a comma list): api, watch, work. Default: all.",
    ),
]
OutputDirOpt = Annotated[
    Path | None, typer.Option("--output-dir", help="Write transcripts here, not beside sources.")
]
FormatsOpt = Annotated[
    str | None, typer.Option("--formats", help="Comma list of txt,srt,vtt,json,tsv.")
]
WorkersOpt = Annotated[int | None, typer.Option("--workers", help="Worker processes.")]
ThreadsOpt = Annotated[
    int | None, typer.Option("--threads-per-worker", help="CPU threads per worker.")
]
ModelOpt = Annotated[
    str | None, typer.Option("--model", help="'bundled', a size name, or a model folder.")
]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="auto, cpu or cuda.")]
ComputeOpt = Annotated[str | None, typer.Option("--compute-type", help="auto, int8, float16, ...")]
HostOpt = Annotated[str | None, typer.Option("--host", help="Address to listen on.")]
PortOpt = Annotated[int | None, typer.Option("--port", help="Port to listen on.")]
TimeoutOpt = Annotated[float | None, typer.Option("--job-timeout", help="Seconds one job may run.")]
AttemptsOpt = Annotated[
    int | None, typer.Option("--max-attempts", help="Attempts before a job fails.")
]
LanguageOpt = Annotated[
    str | None, typer.Option("--language", help="Language code; default detects it.")
]
TaskOpt = Annotated[str | None, typer.Option("--task", help="transcribe or translate.")]
VadOpt = Annotated[
    bool | None, typer.Option("--vad-filter/--no-vad-filter", help="Skip silence (Silero VAD).")
]
WordsOpt = Annotated[
    bool | None,
    typer.Option("--word-timestamps/--no-word-timestamps", help="Word times in the json output."),
]
BeamOpt = Annotated[int | None, typer.Option("--beam-size", help="Beam size (default 5).")]
PromptOpt = Annotated[
    str | None, typer.Option("--initial-prompt", help="Text that primes the model.")
]
LogLevelOpt = Annotated[str | None, typer.Option("--log-level", help="DEBUG, INFO, ...")]
LogFormatOpt = Annotated[
    str | None, typer.Option("--log-format", help="text, or json (one object per line).")
]

# Flag parameters whose name is not the setting's.
PARAM_TO_SETTING = {"config": "config_file"}


def _settings(ctx: typer.Context) -> Settings:
    """Settings from this command's flags over the environment and config file."""
    params = ctx.params
    overrides: dict[str, Any] = {}
    for name, value in params.items():
        setting = PARAM_TO_SETTING.get(name, name)
        if setting in Settings.model_fields and value not in (None, [], ()):
            overrides[setting] = value
    settings = load_settings(**overrides)
    configure_logging(settings.log_level, settings.log_format)
    return settings


@app.command()
def serve(
    ctx: typer.Context,
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
    inboxes: InboxOpt = None,
    roles: RoleOpt = None,
    output_dir: OutputDirOpt = None,
    formats: FormatsOpt = None,
    workers: WorkersOpt = None,
    threads_per_worker: ThreadsOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = None,
    compute_type: ComputeOpt = None,
    host: HostOpt = None,
    port: PortOpt = None,
    job_timeout: TimeoutOpt = None,
    max_attempts: AttemptsOpt = None,
    language: LanguageOpt = None,
    task: TaskOpt = None,
    vad_filter: VadOpt = None,
    word_timestamps: WordsOpt = None,
    beam_size: BeamOpt = None,
    initial_prompt: PromptOpt = None,
    log_level: LogLevelOpt = None,
    log_format: LogFormatOpt = None,
) -> None:
    """Run the service: workers, inbox watcher, scheduler and HTTP API."""
    from whisper_transcriber.service.inboxes import ensure_inboxes
    from whisper_transcriber.service.runner import serve as run_service

    settings = _settings(ctx)
    if "watch" in settings.roles:
        ensure_inboxes(settings)
    run_service(prepare(settings))


@app.command()
def transcribe(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="Audio or video files.")],
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
    output_dir: OutputDirOpt = None,
    formats: FormatsOpt = None,
    workers: WorkersOpt = None,
    threads_per_worker: ThreadsOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = None,
    compute_type: ComputeOpt = None,
    job_timeout: TimeoutOpt = None,
    max_attempts: AttemptsOpt = None,
    language: LanguageOpt = None,
    task: TaskOpt = None,
    vad_filter: VadOpt = None,
    word_timestamps: WordsOpt = None,
    beam_size: BeamOpt = None,
    initial_prompt: PromptOpt = None,
    log_level: LogLevelOpt = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Transcribe again even files already done with the same options.",
        ),
    ] = False,
) -> None:
    """Transcribe files through the queue and worker processes; wait and print where each went."""
    from whisper_transcriber.service.batch import run_until_finished, submit

    prepared = prepare(_settings(ctx))
    jobs, refused = submit(prepared, files, force=force)
    finished = run_until_finished(prepared, jobs)
    for reason in refused:
        typer.echo(f"refused {reason}")
    failed = len(refused)
    for job in finished:
        if job.status.value == "done":
            typer.echo(f"done    {job.source_path}")
            for output in job.outputs:
                typer.echo(f"        -> {output}")
        else:
            failed += 1
            typer.echo(f"{job.status.value:<7} {job.source_path}: {job.error}")
    if failed:
        raise typer.Exit(1)


@app.command()
def jobs(
    ctx: typer.Context,
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
    limit: Annotated[int, typer.Option("--limit", help="How many, newest first.")] = 20,
) -> None:
    """Recent jobs as a table."""
    from whisper_transcriber.db.job_store import JobStore

    settings = _settings(ctx)
    store = JobStore(open_database(settings))
    rows = store.recent(limit)
    typer.echo(f"{'ID':>6}  {'STATUS':<9} {'TRIES':>5}  {'CREATED':<19}  SOURCE")
    for job in rows:
        created = job.created_at.strftime("%Y-%m-%d %H:%M:%S")
        line = f"{job.id:>6}  {job.status.value:<9} {job.attempts:>5}  {created:<19}  {job.source_path}"
        if job.error:
            line += f"  ({job.error})"
        typer.echo(line)


@app.command()
def models(
    ctx: typer.Context,
    config: ConfigOpt = None,
    model: ModelOpt = None,
) -> None:
    """Models this machine can use: the bundled one, and each size, cached or to be downloaded."""
    from whisper_transcriber.worker.models import list_models

    settings = _settings(ctx)
    cache = settings.model_cache_dir.resolve()
    typer.echo(f"model setting: {settings.model}    cache folder: {cache}")
    typer.echo(f"  {'NAME':<24} {'STATUS':<44} WHERE")
    for entry in list_models(cache):
        mark = "*" if entry.name == settings.model else " "
        typer.echo(f"{mark} {entry.name:<24} {entry.note:<44} {entry.where}")
    if settings.model != "bundled" and Path(settings.model).expanduser().is_dir():
        typer.echo(f"* {settings.model:<24} {'a local CTranslate2 folder':<44} {settings.model}")


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context, config: ConfigOpt = None, database_url: DatabaseOpt = None
) -> None:
    """Bring the database schema to the newest version."""
    settings = _settings(ctx)
    open_database(settings, migrate=True).dispose()
    typer.echo("database is up to date")


def main() -> None:
    """Console entry point: a bad setting or an unreachable database is one line, not a traceback."""
    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(2)
    except MissingParameter as exc:
        print(f"error: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except BadParameter as exc:  # a flag's value Typer itself could not convert
        name = exc.param.name if exc.param is not None and exc.param.name else "?"
        setting = PARAM_TO_SETTING.get(name, name)
        print(f"error: {SettingError(setting, exc.message)}", file=sys.stderr)
        sys.exit(2)
    except ClickException as exc:
        print(f"error: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except SettingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except (QueueError, PoolFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
