"""The `whisper-transcriber` command; its setting flags are made from the settings (cli_flags).

Just over 400 lines: one Typer app whose commands are each a few lines calling the service's
modules (batch, remote, job_view, liveness); splitting the app would only scatter its help.
"""

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
from whisper_transcriber.db.values import (
    GUARDS,
    LANGUAGE_DETECTION,
    OUTPUT_FORMATS,
    SUBTITLE_RULES,
    OutputFormat,
)
from whisper_transcriber.service.cli_flags import (
    PARAM_TO_SETTING,
    flag_given,
    settings_flags,
    settings_given,
)
from whisper_transcriber.service.database import job_store, open_database
from whisper_transcriber.service.logs import configure_logging
from whisper_transcriber.service.renamed_settings import log_renamed
from whisper_transcriber.service.settings import SettingError, Settings, load_settings
from whisper_transcriber.worker.pool_failed import PoolFailed

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


# The settings each kind of command takes as flags (service/cli_flags.py makes them from the
# settings, in this order).
DATABASE = ("config_file", "database_url")
POOL = ("workers", "threads_per_worker", "model", "device", "compute_type", "job_timeout_s",
        "max_attempts")  # fmt: skip
JOB_OPTIONS = ("output_dir", "formats", "language", "task", "vad_filter", "word_timestamps",
               "beam_size", "initial_prompt", "hotwords", "diarize", "num_speakers", "min_speakers",
               "max_speakers", *SUBTITLE_RULES, *LANGUAGE_DETECTION, *GUARDS)  # fmt: skip
LOGGING = ("log_level", "log_format")


def _settings(ctx: typer.Context) -> Settings:
    """Settings from this command's flags over the environment and config file."""
    settings = load_settings(**settings_given(ctx))
    configure_logging(settings.log_level, settings.log_format)
    log_renamed(settings.renamed)  # after logging is set up, so that the warnings show as logs
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
@settings_flags(
    *DATABASE, "inboxes", "roles", "instance_name", "host", "port", *POOL, *JOB_OPTIONS, *LOGGING
)
def serve(ctx: typer.Context) -> None:
    """Run the service: workers, inbox watcher, scheduler and HTTP API."""
    from whisper_transcriber.service.bootstrap import prepare
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
@settings_flags(*DATABASE, "server_url", "api_key", *POOL, *JOB_OPTIONS, *LOGGING)
def transcribe(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(metavar="FILE...", help="Audio or video files.")],
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Transcribe again even files already done with the same options.",
        ),
    ] = False,
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
    --model, --device, --compute-type, --workers, --threads-per-worker, --job-timeout-s was
    given.
    Otherwise a worker pool runs here, as it does when that service goes away mid-way.
    """
    from whisper_transcriber.service.progress import display, shows_bars

    if not flag_given(ctx, "log_level") and shows_bars(to_stderr=print_text):
        # The bars own the terminal: the workers' routine INFO lines would tear through them.
        ctx.params["log_level"] = "WARNING"
    settings = _settings(ctx)
    if local and settings.server_url is not None:  # from the environment or the config file
        settings = settings.model_copy(update={"server_url": None})
    with display(to_stderr=print_text) as shown:
        if settings.server_url is not None:
            # Only the flag: an output_dir from the config file or the environment is the
            # service's setting, not where this client writes.
            output_dir = ctx.params.get("output_dir")
            request = _remote_request(
                settings, files, force, upload, Path(output_dir) if output_dir else None, print_text
            )
            outcomes = _transcribe_remotely(settings, request, shown)
        else:
            from whisper_transcriber.service.batch import transcribe_here
            from whisper_transcriber.service.handover import POOL_SETTINGS

            pool_flags = any(flag_given(ctx, name) for name in POOL_SETTINGS)
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
@settings_flags(*DATABASE)
def jobs(
    ctx: typer.Context,
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
    from whisper_transcriber.db.values import JobQuery, inbox_origin
    from whisper_transcriber.service.job_view import jobs_json, jobs_table

    for flag, text in (("--inbox", inbox_name), ("--source", source)):
        if text is not None and not _utf8(text):
            raise BadParameter(f"{flag}: the text is not valid UTF-8")
    store = _store(ctx)
    origin = inbox_origin(inbox_name) if inbox_name is not None else None
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
@settings_flags(*DATABASE)
def show(
    ctx: typer.Context,
    job_id: JobArg,
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
@settings_flags(*DATABASE)
def transcript(
    ctx: typer.Context,
    job_id: JobArg,
    output_format: Annotated[
        OutputFormat,
        typer.Option("--format", help=f"{', '.join(OUTPUT_FORMATS[:-1])} or {OUTPUT_FORMATS[-1]}."),
    ] = "txt",
) -> None:
    """A job's transcript, rendered from the database as GET /jobs/{id}/transcript renders it."""
    from whisper_transcriber.worker.outputs import rendered

    store = _store(ctx)
    job = store.get(job_id)  # JobNotFound for an unknown job
    text = store.transcript(job_id)
    if text is None:
        raise ClickException(f"job {job_id} has no transcript ({job.status.value})")
    typer.echo(rendered(text.named(), output_format, job.options), nl=False)


@app.command()
@settings_flags(*DATABASE)
def cancel(ctx: typer.Context, job_id: JobArg) -> None:
    """Cancel a queued or running job (as DELETE /jobs/{id} does)."""
    job = _store(ctx).cancel(job_id)
    typer.echo(f"job {job.id}: {job.status.value}")


@app.command()
@settings_flags(*DATABASE, "max_attempts")
def retry(ctx: typer.Context, job_id: JobArg) -> None:
    """Queue a failed or cancelled job again, with a fresh allowance of attempts (as POST
    /jobs/{id}/retry does); a running service takes it."""
    from whisper_transcriber.watcher.originals import bring_back_original

    store = _store(ctx)
    bring_back_original(store.get(job_id))  # from failed/, as the inbox's rules want
    job = store.retry(job_id)
    typer.echo(f"job {job.id}: {job.status.value}")


@app.command()
@settings_flags("config_file", "model")
def models(ctx: typer.Context) -> None:
    """Models this machine can use: the bundled one, and each size, cached or to be downloaded."""
    from whisper_transcriber.worker.defaults import BUNDLED_MODEL
    from whisper_transcriber.worker.models import list_models

    settings = _settings(ctx)
    cache = settings.model_cache_dir.resolve()
    typer.echo(f"model setting: {settings.model}    cache folder: {cache}")
    typer.echo(f"  {'NAME':<24} {'STATUS':<44} WHERE")
    for entry in list_models(cache):
        mark = "*" if entry.name == settings.model else " "
        typer.echo(f"{mark} {entry.name:<24} {entry.note:<44} {entry.where}")
    if settings.model != BUNDLED_MODEL and Path(settings.model).expanduser().is_dir():
        typer.echo(f"* {settings.model:<24} {'a local CTranslate2 folder':<44} {settings.model}")


@app.command()
@settings_flags(*DATABASE, "instance_name")
def check(ctx: typer.Context) -> None:
    """Exit 0 when this instance's workers on this machine beat (the worker registry), 1 when
    any is stale or none runs: a liveness probe for containers that serve no HTTP."""
    from whisper_transcriber.service.liveness import check_instance

    verdict = check_instance(_settings(ctx))
    for line in verdict.lines:
        typer.echo(line)
    if not verdict.healthy:
        raise typer.Exit(1)


@app.command("webhook-secret")
def webhook_secret() -> None:
    """Print a new Standard Webhooks secret (whsec_...) for the webhooks or callback_secret
    settings, or a request's callback_secret; the receiver verifies deliveries with it."""
    from whisper_transcriber.service.webhooks.signing import generate_secret

    typer.echo(generate_secret())


@db_app.command("upgrade")
@settings_flags(*DATABASE)
def db_upgrade(ctx: typer.Context) -> None:
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
