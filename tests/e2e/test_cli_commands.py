"""The command line's everyday details: --version, -h, readable help at 80 columns, the job
commands (jobs, show, transcript, cancel, retry) against a real database, unknown languages,
and start-up checks (a port in use, a data folder that cannot be written) that stop `serve`
with one line before anything starts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest
import typer

from tests.helpers.cli import CLI_TIMEOUT_S, COMMAND, clean_env, run_cli
from tests.helpers.service import free_port, group_members
from whisper_transcriber.api.schemas import JobOut
from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.transcript import Segment, Transcript
from whisper_transcriber.db.values import JobOptions
from whisper_transcriber.service.cli import PARAM_TO_SETTING, app
from whisper_transcriber.service.preflight import check_serve
from whisper_transcriber.service.settings import FLAGGED, Settings, describe_setting
from whisper_transcriber.worker.outputs import render, rendered

TRANSCRIPT = Transcript(
    language="en",
    language_probability=0.98,
    duration=4.5,
    segments=(
        Segment(id=1, start=0.0, end=2.0, text=" Hello there."),
        Segment(id=2, start=2.0, end=4.5, text=" The museum opens at nine."),
    ),
)
COMMANDS = [(), ("serve",), ("transcribe",), ("jobs",), ("show",), ("transcript",), ("cancel",),
            ("retry",), ("models",), ("webhook-secret",), ("db",), ("db", "upgrade")]  # fmt: skip


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def test_version_is_the_installed_distributions(tmp_path: Path) -> None:
    result = run_cli("--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"whisper-transcriber {version('whisper-transcriber')}\n"


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_h_is_help_on_every_command(tmp_path: Path, command: tuple[str, ...]) -> None:
    short = run_cli(*command, "-h", cwd=tmp_path)
    long = run_cli(*command, "--help", cwd=tmp_path)
    assert short.returncode == 0 and long.returncode == 0, (short.stderr, long.stderr)
    assert short.stdout == long.stdout
    assert short.stdout.startswith("Usage: whisper-transcriber")
    assert "-h, --help" in short.stdout
    assert not list(tmp_path.iterdir())  # help touches no database


def test_help_at_80_columns_shows_whole_option_names_and_defaults(tmp_path: Path) -> None:
    result = run_cli("serve", "-h", cwd=tmp_path, env=clean_env(COLUMNS="80"))
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert "…" not in text
    for option in (
        "--threads-per-worker <int>",
        "--word-timestamps / --no-word-timestamps",
        "--vad-filter / --no-vad-filter",
        "--database-url <str>",
        "--initial-prompt <str>",
    ):
        assert option in text, option
    flat = " ".join(text.split())  # defaults may wrap onto the next line
    for default in (  # each flag's help is its setting's description, with the default
        "Port of the HTTP API. [default: 9000]",
        "[default: 127.0.0.1]",
        "[default: bundled]",
        "[default: api,watch,work]",
        "[default: txt,srt,vtt,json,tsv]",
        "Word-level times in the json output. [default: off]",
        "Beam search width (1 is greedy). [default: 5]",
        "[default: 3600]",
    ):
        assert default in flat, default
    assert "--device <auto|cpu|cuda>" in text  # a Literal's choices
    assert "--job-timeout-s <float>" in text and "--job-timeout " not in text  # old name hidden


# -- job commands -----------------------------------------------------------------------------


@pytest.fixture
def jobs_db(database_url: str, tmp_path: Path) -> tuple[str, dict[str, int]]:
    """Four jobs: done with a transcript (inbox podcasts), failed (api), cancelled and queued."""
    media = tmp_path / "media"
    media.mkdir()
    engine = make_engine(database_url)
    store = JobStore(engine, max_attempts=1)
    ids: dict[str, int] = {}
    for name, origin in (
        ("Interview.wav", "inbox:podcasts"),
        ("talk.wav", "api"),
        ("memo.wav", "cli"),
        ("queued.wav", "api"),
    ):
        (media / name).write_bytes(b"RIFF" + name.encode())
        job, _ = store.enqueue(media / name, JobOptions(language="en", formats=("txt",)), origin)
        ids[name] = job.id
    done = store.claim("worker-1")
    assert done is not None and done.id == ids["Interview.wav"]
    store.complete(done.id, done.attempts, TRANSCRIPT, publish=lambda: [media / "Interview.txt"])
    failed = store.claim("worker-1")
    assert failed is not None and failed.id == ids["talk.wav"]
    store.fail(failed.id, failed.attempts, "could not decode the audio")
    store.cancel(ids["memo.wav"])
    engine.dispose()
    return database_url, ids


def test_jobs_filters_and_json(tmp_path: Path, jobs_db: tuple[str, dict[str, int]]) -> None:
    url, ids = jobs_db

    def listed(*args: str) -> list[str]:
        result = run_cli("jobs", "--database-url", url, *args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        header, *rows = result.stdout.splitlines()
        assert header.split() == ["ID", "STATUS", "TRIES", "CREATED", "SOURCE"]
        return rows

    assert len(listed()) == 4
    [failed] = listed("--status", "failed")
    assert f"{ids['talk.wav']} " in failed and "(could not decode the audio)" in failed
    [podcast] = listed("--inbox", "podcasts")
    assert podcast.endswith("Interview.wav") and " done " in podcast
    [by_path] = listed("--source", "INTERVIEW")  # text in the path, any case
    assert by_path == podcast
    assert listed("--inbox", "podcasts", "--status", "queued") == []

    result = run_cli("jobs", "--database-url", url, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    items = json.loads(result.stdout)
    assert [item["id"] for item in items] == sorted(ids.values(), reverse=True)
    done = next(item for item in items if item["id"] == ids["Interview.wav"])
    JobOut.model_validate(done)  # the API's own shape
    assert done["status"] == "done" and done["source"] == "podcasts" and done["inbox"] == "podcasts"
    assert done["language"] == "en" and done["duration"] == 4.5
    assert done["links"]["transcript.srt"] == f"/jobs/{done['id']}/transcript?format=srt"
    filtered = run_cli("jobs", "--database-url", url, "--json", "--status", "queued", cwd=tmp_path)
    assert [item["id"] for item in json.loads(filtered.stdout)] == [ids["queued.wav"]]

    bad = run_cli("jobs", "--database-url", url, "--status", "finished", cwd=tmp_path)
    assert bad.returncode == 2
    assert "'--status': 'finished' is not one of 'queued'" in one_line_error(bad)


def details(shown: str) -> dict[str, str]:
    """`show`'s labelled lines (after the first) by label; a list's first item."""
    fields = {}
    for line in shown.splitlines()[1:]:
        if line[2] != " ":  # not the next item of a list
            label, value = line.split(None, 1)
            fields[label] = value
    return fields


def test_show_prints_one_job(tmp_path: Path, jobs_db: tuple[str, dict[str, int]]) -> None:
    url, ids = jobs_db
    done = ids["Interview.wav"]
    result = run_cli("show", str(done), "--database-url", url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"job {done}\n")
    fields = details(result.stdout)
    assert fields["status"] == "done (100%)"
    assert fields["source"].endswith("media/Interview.wav")
    assert fields["from"] == "inbox podcasts"
    assert fields["attempts"] == "1 of 1"
    assert "language=en" in fields["options"] and "formats=txt" in fields["options"]
    assert fields["language"] == "en (given), 4.5 s of audio"
    assert fields["outputs"].endswith("media/Interview.txt")
    assert {"created", "started", "finished"} <= set(fields)

    failed = run_cli("show", str(ids["talk.wav"]), "--database-url", url, cwd=tmp_path)
    assert failed.returncode == 0, failed.stderr
    fields = details(failed.stdout)
    assert fields["status"] == "failed" and fields["error"] == "could not decode the audio"
    assert fields["outputs"] == "none" and "language" not in fields

    as_json = run_cli("show", str(done), "--json", "--database-url", url, cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    job = JobOut.model_validate_json(as_json.stdout)
    assert (job.id, job.status, job.language) == (done, JobStatus.DONE, "en")

    missing = run_cli("show", "999999", "--database-url", url, cwd=tmp_path)
    assert missing.returncode == 1
    assert one_line_error(missing) == "error: job 999999 does not exist"


def test_transcript_renders_as_the_api_does(
    tmp_path: Path, jobs_db: tuple[str, dict[str, int]]
) -> None:
    url, ids = jobs_db
    done = str(ids["Interview.wav"])
    srt = run_cli("transcript", done, "--format", "srt", "--database-url", url, cwd=tmp_path)
    assert srt.returncode == 0, srt.stderr
    # As the job's subtitle rules make the cues (its two short sentences in one).
    assert srt.stdout == rendered(TRANSCRIPT, "srt", JobOptions(language="en", formats=("txt",)))
    assert srt.stdout.startswith("1\n00:00:00,000 --> 00:00:04,500\nHello there. The museum")
    txt = run_cli("transcript", done, "--database-url", url, cwd=tmp_path)
    assert txt.stdout == render(TRANSCRIPT, "txt")

    queued = run_cli("transcript", str(ids["queued.wav"]), "--database-url", url, cwd=tmp_path)
    assert queued.returncode == 1
    assert one_line_error(queued) == f"error: job {ids['queued.wav']} has no transcript (queued)"
    missing = run_cli("transcript", "999999", "--database-url", url, cwd=tmp_path)
    assert (missing.returncode, one_line_error(missing)) == (1, "error: job 999999 does not exist")
    bad = run_cli("transcript", done, "--format", "doc", "--database-url", url, cwd=tmp_path)
    assert bad.returncode == 2 and "'--format'" in one_line_error(bad)


def test_cancel_and_retry_follow_the_apis_rules(
    tmp_path: Path, jobs_db: tuple[str, dict[str, int]]
) -> None:
    url, ids = jobs_db
    queued, done, failed = ids["queued.wav"], ids["Interview.wav"], ids["talk.wav"]

    def cli(*args: object) -> subprocess.CompletedProcess[str]:
        return run_cli(*map(str, args), "--database-url", url, cwd=tmp_path)

    cancelled = cli("cancel", queued)
    assert (cancelled.returncode, cancelled.stdout) == (0, f"job {queued}: cancelled\n")
    refused = cli("cancel", done)
    assert refused.returncode == 1
    assert one_line_error(refused) == (
        f"error: job {done} is done; only queued or running jobs can be cancelled"
    )

    for job_id in (queued, failed):  # cancelled and failed jobs go back to the queue
        again = cli("retry", job_id)
        assert (again.returncode, again.stdout) == (0, f"job {job_id}: queued\n"), again.stderr
    twice = cli("retry", queued)
    assert twice.returncode == 1
    assert one_line_error(twice) == (
        f"error: job {queued} is queued; only failed or cancelled jobs can be retried"
    )
    for command in ("cancel", "retry"):
        missing = cli(command, 999999)
        assert (missing.returncode, one_line_error(missing)) == (
            1,
            "error: job 999999 does not exist",
        )

    engine = make_engine(url)
    store = JobStore(engine)
    assert store.get(queued).status is JobStatus.QUEUED
    retried = store.get(failed)
    assert retried.status is JobStatus.QUEUED and retried.error is None
    assert retried.max_attempts == retried.attempts + 3  # the settings' allowance (max_attempts)
    engine.dispose()


# -- languages --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "setting"),
    [
        (["--language", "klingon"], {}, "language"),
        ([], {"WHISPER_TRANSCRIBER_LANGUAGE": "xx"}, "language"),
        (["--inbox", "inbox?language=zz"], {}, "inboxes"),
    ],
)
def test_an_unknown_language_is_refused_with_the_valid_codes(
    tmp_path: Path, args: list[str], env: dict[str, str], setting: str
) -> None:
    result = run_cli("serve", *args, cwd=tmp_path, env=clean_env(**env))
    assert result.returncode == 2
    line = one_line_error(result)
    assert line.startswith(f"error: setting {setting} ("), line
    assert "unknown language" in line and "Whisper knows af, am, ar," in line
    assert line.endswith(", zh, yue")
    assert not list(tmp_path.iterdir())  # stopped before the database was made


def test_a_language_in_capitals_is_whispers_code(tmp_path: Path) -> None:
    assert Settings(language="DE").language == "de"


# -- start-up checks --------------------------------------------------------------------------


def serve_stopped(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """`serve` run to its end in a session of its own: its one error line, once no process of
    its group (a worker) is left."""
    process = subprocess.Popen(
        [COMMAND, "serve", *args],
        cwd=tmp_path,
        env=env or clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    stdout, stderr = process.communicate(timeout=CLI_TIMEOUT_S)
    assert process.returncode == 2, stderr
    assert group_members(process.pid) == []  # no worker process was ever left behind
    assert stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr  # not a log line before it: nothing had started
    return lines[0]


def test_a_port_in_use_stops_serve_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = serve_stopped(tmp_path, "--port", str(port))
    assert line == (
        f"error: setting port (--port or WHISPER_TRANSCRIBER_PORT): 127.0.0.1:{port} is already "
        "in use"
    )
    assert not list(tmp_path.iterdir())  # no database, no inbox, no uploads folder made


def test_the_port_is_checked_only_for_the_api_role(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings(
            roles=["work", "watch"],
            port=port,
            database_url=f"sqlite:///{tmp_path / 'db' / 'jobs.db'}",
            uploads_dir=Path("/dev/null/uploads"),  # not the api role: never written
        )
        assert check_serve(settings) == []
    free = Settings(port=free_port(), uploads_dir=tmp_path / "up", database_url="sqlite://")
    sockets = check_serve(free)
    try:
        assert [sock.getsockname() for sock in sockets] == [("127.0.0.1", free.port)]
        assert (tmp_path / "up").is_dir()
    finally:
        for sock in sockets:
            sock.close()


def blocked_folder(tmp_path: Path, how: str) -> Path:
    """A folder the service cannot create or write, even as root (a path under a regular file)."""
    if how == "under a file":
        (tmp_path / "a-file").write_text("")
        return tmp_path / "a-file" / "data"
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o500)
    return folder


@pytest.mark.parametrize("how", ["under a file", "read-only"])
@pytest.mark.parametrize("setting", ["database_url", "uploads_dir", "output_dir"])
def test_a_data_folder_that_cannot_be_written_stops_serve(
    tmp_path: Path, setting: str, how: str
) -> None:
    if how == "read-only" and os.geteuid() == 0:
        how = "under a file"  # root writes into a 0o500 folder; a file is no folder even for root
    folder = blocked_folder(tmp_path, how)
    value = f"sqlite:///{folder / 'jobs.db'}" if setting == "database_url" else str(folder)
    env = clean_env(**{f"WHISPER_TRANSCRIBER_{setting.upper()}": value})
    try:
        line = serve_stopped(tmp_path, "--port", str(free_port()), env=env)
    finally:
        if how == "read-only":
            folder.chmod(0o700)
    assert line.startswith(
        f"error: setting {setting} ({describe_setting(setting)}): the folder {folder} cannot be "
    ), line
    said = "created: Not a directory" if how == "under a file" else "written: Permission denied"
    assert line.endswith(said), line


def test_a_file_where_a_data_folder_belongs_is_not_a_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "uploads"
    blocker.write_text("not a folder")
    env = clean_env(WHISPER_TRANSCRIBER_UPLOADS_DIR=str(blocker))
    line = serve_stopped(tmp_path, "--port", str(free_port()), env=env)
    # uploads_dir has no flag: the line names only what sets it.
    assert line == (
        f"error: setting uploads_dir (WHISPER_TRANSCRIBER_UPLOADS_DIR): {blocker} is not a folder"
    )


def test_errors_name_a_flag_only_where_a_command_has_one() -> None:
    """FLAGGED (what describe_setting names) is every setting some command takes as a flag."""
    flagged: set[str] = set()

    def walk(command: object) -> None:
        for param in getattr(command, "params", []):
            setting = PARAM_TO_SETTING.get(param.name, param.name)
            if setting in Settings.model_fields:
                flagged.add(setting)
        for sub in getattr(command, "commands", {}).values():
            walk(sub)

    walk(typer.main.get_command(app))
    assert flagged == FLAGGED


@pytest.mark.parametrize(
    "args",
    [
        ("show", "99999999999999999999"),
        ("cancel", "9223372036854775808"),
        ("retry", "0"),
        ("jobs", "--limit", "99999999999999999999"),
        ("jobs", "--source", "caf\udcff"),
        ("jobs", "--inbox", "\udcff"),
    ],
    ids=["huge id", "id past 64 bits", "id 0", "huge limit", "source not UTF-8", "inbox not UTF-8"],
)
def test_out_of_range_ids_and_undecodable_filters_are_one_line(
    tmp_path: Path, jobs_db: tuple[str, dict[str, int]], args: tuple[str, ...]
) -> None:
    database_url, _ids = jobs_db
    # Arguments as a shell passes undecodable bytes (os.fsencode of the surrogate escapes).
    argv = [os.fsencode(arg) for arg in args]
    result = subprocess.run(
        [COMMAND, *argv, "--database-url", database_url],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
    )  # fmt: skip
    assert result.returncode == 2
    one_line_error(result)


def test_local_runs_here_whatever_server_url_the_environment_names(tmp_path: Path) -> None:
    result = run_cli(
        "transcribe", tmp_path / "missing.wav", "--local", "--database-url",
        f"sqlite:///{tmp_path / 'jobs.db'}", cwd=tmp_path,
        env=clean_env(WHISPER_TRANSCRIBER_SERVER_URL="http://127.0.0.1:1"),
    )  # fmt: skip
    # A local run: the file is refused by this machine's queue, not the unreachable server.
    assert "server_url" not in result.stderr, result.stderr
    assert result.returncode == 1 and "missing.wav" in result.stdout + result.stderr
