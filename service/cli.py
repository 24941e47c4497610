"""The `whisper-transcriber` command. Each flag is a setting (see service/settings.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

# Typer's own exceptions, caught to print one line instead of a usage box.
from typer._click.exceptions import (
    BadParameter,
    ClickException,
    MissingParameter,
    NoArgsIsHelpError,
)

from whisper_transcriber.db.errors import QueueError
from whisper_transcriber.db.models import MAX_JOB_ID, JobStatus
from whisper_transcriber.db.values import OutputFormat
from whisper_transcriber.service.bootstrap import job_store, open_database, prepare
from whisper_transcriber.service.settings import SettingError, Settings, load_settings
from whisper_transcriber.worker.logs import configure_logging
from whisper_transcriber.worker.supervisor import PoolFailed

if TYPE_CHECKING:
    from whisper_transcriber.db.job_store import JobStore
    from whisper_transcriber.service.progress import Display, Outcome
    from whisper_transcriber.service.remote import RemoteRequest

# -h as well as --help everywhere; Click's plain help (not rich's tables, which cut long option
# names at 80 columns), up to 100 columns on a wider terminal.
CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

app = typer.Typer(
    name="whisper-transcriber",
    help="Self-hosted speech-to-text: watch folders, a durable queue and faster-whisper workers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
    context_settings=CONTEXT_SETTINGS,
)
db_app = typer.Typer(
    help="Database maintenance.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings=CONTEXT_SETTINGS,
)
app.add_typer(db_app, name="db")


def _help(text: str, setting: str) -> str:
    """An option's help with its setting's default: flags default to None (unset), and an unset
    flag falls back to the environment, the config file, then this."""
    default = Settings.model_fields[setting].default
    if default is None:
        return text
    if isinstance(default, bool):
        shown = "on" if default else "off"
    elif isinstance(default, list):
        shown = ",".join(str(getattr(item, "path", item)) for item in default)
    elif isinstance(default, float):
        shown = f"{default:g}"
    else:
        shown = str(default)
    return f"{text}  [default: {shown}]"


# Each option's parameter name is the setting it sets; _settings(ctx) collects them from the context.
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML config file.")]
DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help=_help("sqlite:///file.db or postgresql://...", "database_url"),
    ),
]
InboxOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--inbox",
        help=_help(
            "Folder to watch (repeatable): PATH or 'PATH?observer=polling&language=de&...'.",
            "inboxes",
        ),
    ),
]
RoleOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--role",
        help=_help(
            "Run only these parts (repeatable, or a comma list): api, watch, work.", "roles"
        ),
    ),
]
OutputDirOpt = Annotated[
    Path | None, typer.Option("--output-dir", help="Write transcripts here, not beside sources.")
]
FormatsOpt = Annotated[
    str | None,
    typer.Option("--formats", help=_help("Comma list of txt,srt,vtt,json,tsv.", "formats")),
]
WorkersOpt = Annotated[
    int | None, typer.Option("--workers", help="Worker processes; unset chooses from the machine.")
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads-per-worker", help="CPU threads per worker; unset chooses from the machine."
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", help=_help("'bundled', a size name, or a model folder.", "model")),
]
DeviceOpt = Annotated[
    str | None, typer.Option("--device", help=_help("auto, cpu or cuda.", "device"))
]
ComputeOpt = Annotated[
    str | None,
    typer.Option("--compute-type", help=_help("auto, int8, float16, ...", "compute_type")),
]
HostOpt = Annotated[str | None, typer.Option("--host", help=_help("Address to listen on.", "host"))]
PortOpt = Annotated[int | None, typer.Option("--port", help=_help("Port to listen on.", "port"))]
TimeoutOpt = Annotated[
    float | None,
    typer.Option("--job-timeout", help=_help("Seconds one job may run.", "job_timeout")),
]
AttemptsOpt = Annotated[
    int | None,
    typer.Option("--max-attempts", help=_help("Attempts before a job fails.", "max_attempts")),
]
LanguageOpt = Annotated[
    str | None,
    typer.Option("--language", help="Whisper's language code (en, de, ...); unset detects it."),
]
TaskOpt = Annotated[
    str | None, typer.Option("--task", help=_help("transcribe or translate.", "task"))
]
VadOpt = Annotated[
    bool | None,
    typer.Option(
        "--vad-filter/--no-vad-filter", help=_help("Skip silence (Silero VAD).", "vad_filter")
    ),
]
WordsOpt = Annotated[
    bool | None,
    typer.Option(
        "--word-timestamps/--no-word-timestamps",
        help=_help("Word times in the json output.", "word_timestamps"),
    ),
]
BeamOpt = Annotated[
    int | None, typer.Option("--beam-size", help=_help("Beam search width.", "beam_size"))
]
PromptOpt = Annotated[
    str | None, typer.Option("--initial-prompt", help="Text that primes the model.")
]
LogLevelOpt = Annotated[
    str | None, typer.Option("--log-level", help=_help("DEBUG, INFO, ...", "log_level"))
]
LogFormatOpt = Annotated[
    str | None,
    typer.Option("--log-format", help=_help("text, or json (one object per line).", "log_format")),
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


def _store(ctx: typer.Context) -> JobStore:
    """The job store of this command's settings (its database migrated first)."""
    settings = _settings(ctx)
    return job_store(settings, open_database(settings))


def _print_version(wanted: bool) -> None:
    if not wanted:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("whisper-transcriber")
    except PackageNotFoundError:
        installed = "unknown (not installed)"
    typer.echo(f"whisper-transcriber {installed}")
    raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            expose_value=False,
            help="Print the installed version and exit.",
        ),
    ] = False,
) -> None:
    pass


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
    from whisper_transcriber.service.preflight import check_serve
    from whisper_transcriber.service.runner import serve as run_service

    settings = _settings(ctx)
    sockets = check_serve(settings)  # the port and data folders, before anything starts
    try:
        if "watch" in settings.roles:
            ensure_inboxes(settings)
        run_service(prepare(settings), sockets)
    finally:
        for sock in sockets:
            sock.close()


@app.command()
def transcribe(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(metavar="FILE...", help="Audio or video files.")],
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
    server_url: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="Send the files to the service at this URL (http://host:9000) and follow them "
            "there (setting server_url).",
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", help="The service's API key, sent as X-API-Key (api_key)."),
    ] = None,
    upload: Annotated[
        bool,
        typer.Option("--upload", help="With a server: always upload, never send the path."),
    ] = False,
    print_text: Annotated[
        bool,
        typer.Option(
            "--print",
            "--stdout",
            help="Print each transcript's text on stdout (the status lines go to stderr).",
        ),
    ] = False,
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="Run a worker pool here: no server_url, and no hand-over to a service that "
            "works on the database.",
        ),
    ] = False,
) -> None:
    """Transcribe files and wait; print where each transcript went; exit 1 if any file failed.

    With --server URL (or server_url), the service there does the work: each file goes by its
    path when the service sees the same file (same size and modification time), by upload
    otherwise; --output-dir then writes the transcripts here (fetched from the service).

    Without a server, the files are queued in the database. A service already working on that
    database gets them, and no model is loaded here, when: it answers on this machine at the
    host and port settings (a loopback address; 0.0.0.0 asked on 127.0.0.1) with workers up, it
    shows the job just queued as recorded (so it reads the same database), and none of --local,
    --model, --device, --compute-type, --workers, --threads-per-worker, --job-timeout was given.
    Otherwise a worker pool runs here, as it does when that service goes away mid-way.
    """
    from whisper_transcriber.service.progress import display, shows_bars

    if log_level is None and shows_bars(to_stderr=print_text):
        # The bars own the terminal: the workers' routine INFO lines would tear through them.
        ctx.params["log_level"] = "WARNING"
    settings = _settings(ctx)
    if local and settings.server_url is not None:  # from the environment or the config file
        settings = settings.model_copy(update={"server_url": None})
    with display(to_stderr=print_text) as shown:
        if settings.server_url is not None:
            # Only the flag: an output_dir from the config file or the environment is the
            # service's setting, not where this client writes.
            request = _remote_request(settings, files, force, upload, output_dir, print_text)
            outcomes = _transcribe_remotely(settings, request, shown)
        else:
            from whisper_transcriber.service.batch import transcribe_here
            from whisper_transcriber.service.handover import POOL_SETTINGS

            pool_flags = any(ctx.params.get(name) is not None for name in POOL_SETTINGS)
            outcomes = transcribe_here(
                settings,
                files,
                shown,
                force=force,
                hand_over=not (local or pool_flags),
                print_text=print_text,
            )
    if print_text:
        texts = [outcome for outcome in outcomes if outcome.text is not None]
        for outcome in texts:
            if len(texts) > 1:
                typer.echo(f"==> {outcome.label} <==")
            typer.echo(outcome.text.rstrip("\n") if outcome.text else "")
    if not all(outcome.ok for outcome in outcomes):
        raise typer.Exit(1)


def _remote_request(
    settings: Settings,
    files: list[Path],
    force: bool,
    upload: bool,
    output_dir: Path | None,
    print_text: bool,
) -> RemoteRequest:
    from whisper_transcriber.service.remote import RemoteRequest, options_from

    return RemoteRequest(
        files=files,
        options=options_from(settings),
        force=force,
        always_upload=upload,
        output_dir=output_dir,
        print_text=print_text,
    )


def _transcribe_remotely(
    settings: Settings, request: RemoteRequest, shown: Display
) -> list[Outcome]:
    """transcribe --server: service/remote.py."""
    from whisper_transcriber.service.client import ServiceClient
    from whisper_transcriber.service.remote import transcribe as transcribe_remotely

    assert settings.server_url is not None
    key = settings.api_key.get_secret_value() if settings.api_key else None
    with ServiceClient(settings.server_url, key) as client:
        return transcribe_remotely(client, request, shown)


@app.command()
def jobs(
    ctx: typer.Context,
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
    status: Annotated[
        JobStatus | None, typer.Option("--status", help="Only jobs in this state.")
    ] = None,
    inbox_name: Annotated[
        str | None, typer.Option("--inbox", help="Only jobs from the inbox of this name.")
    ] = None,
    source: Annotated[
        str | None,
        typer.Option("--source", help="Only jobs whose file path holds this text (any case)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON array, each job as GET /jobs shows it.")
    ] = False,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=500, help="How many, newest first.")
    ] = 20,
) -> None:
    """Recent jobs as a table (or JSON), newest first."""
    from whisper_transcriber.db.values import JobQuery
    from whisper_transcriber.service.job_view import jobs_json, jobs_table

    for flag, text in (("--inbox", inbox_name), ("--source", source)):
        if text is not None and not _utf8(text):
            raise BadParameter(f"{flag}: the text is not valid UTF-8")
    store = _store(ctx)
    origin = f"inbox:{inbox_name}" if inbox_name is not None else None
    rows = store.list_jobs(JobQuery(status=status, origin=origin, path=source), limit)
    if as_json:
        summaries = store.transcript_summaries([job.id for job in rows])
        typer.echo(jobs_json(rows, summaries))
        return
    for line in jobs_table(rows):
        typer.echo(line)


def _utf8(text: str) -> bool:
    """Arguments that were not UTF-8 arrive with surrogate escapes; the database takes none."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


JobArg = Annotated[
    int,
    typer.Argument(metavar="JOB", min=1, max=MAX_JOB_ID, help="The job's id (see `jobs`)."),
]


@app.command()
def show(
    ctx: typer.Context,
    job_id: JobArg,
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="As GET /jobs/{id} answers it.")] = False,
) -> None:
    """One job: status, attempts, source, options, outputs, error and times."""
    from whisper_transcriber.service.job_view import job_details, job_json

    store = _store(ctx)
    job = store.get(job_id)
    summary = store.transcript_summaries([job_id]).get(job_id)
    if as_json:
        typer.echo(job_json(job, summary))
        return
    for line in job_details(job, summary):
        typer.echo(line)


@app.command()
def transcript(
    ctx: typer.Context,
    job_id: JobArg,
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="txt, srt, vtt, json or tsv.")
    ] = "txt",
) -> None:
    """A job's transcript, rendered from the database as GET /jobs/{id}/transcript renders it."""
    from whisper_transcriber.worker.outputs import render

    store = _store(ctx)
    text = store.transcript(job_id)
    if text is None:
        job = store.get(job_id)  # JobNotFound for an unknown job
        raise ClickException(f"job {job_id} has no transcript ({job.status.value})")
    typer.echo(render(text, output_format), nl=False)


@app.command()
def cancel(
    ctx: typer.Context, job_id: JobArg, config: ConfigOpt = None, database_url: DatabaseOpt = None
) -> None:
    """Cancel a queued or running job (as DELETE /jobs/{id} does)."""
    job = _store(ctx).cancel(job_id)
    typer.echo(f"job {job.id}: {job.status.value}")


@app.command()
def retry(
    ctx: typer.Context,
    job_id: JobArg,
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
    max_attempts: AttemptsOpt = None,
) -> None:
    """Queue a failed or cancelled job again, with a fresh allowance of attempts (as POST
    /jobs/{id}/retry does); a running service takes it."""
    from whisper_transcriber.worker.originals import requeue

    job = requeue(_store(ctx), job_id)
    typer.echo(f"job {job.id}: {job.status.value}")


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
        if setting in Settings.model_fields:
            print(f"error: {SettingError(setting, exc.message)}", file=sys.stderr)
        else:  # a command's own option (jobs --status) or argument
            message = exc.format_message().replace("Value error, ", "")
            print(f"error: {message}", file=sys.stderr)
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
