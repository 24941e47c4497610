"""`transcribe` as a client of a running service (--server), and handing its jobs to a service
that works on the same database. A real service in a subprocess, the real command, real speech."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.cli import COMMAND, clean_env, run_cli
from tests.helpers.fake_engine import fake_engine_env, plan
from tests.helpers.media import FIXTURES
from tests.helpers.service import Service, free_port, running_service, service_env
from tests.helpers.waiting import wait_until
from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.values import JobQuery

KEY = "s3cret-key"


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.fixture
def service(sqlite_url: str, inbox: Path, tmp_path: Path) -> Iterator[Service]:
    """A service on SQLite with one worker, its inbox the only folder it takes paths from."""
    with running_service(
        "--database-url", sqlite_url, "--inbox", inbox, "--workers", "1", "--formats", "txt,srt",
        cwd=tmp_path, env=service_env(),
    ) as running:  # fmt: skip
        yield running


def only_job(service: Service) -> dict[str, object]:
    response = service.client.get("/jobs")
    assert response.status_code == 200, response.text
    [job] = response.json()["items"]
    assert isinstance(job, dict)
    return job


def test_by_path_when_the_service_sees_the_same_file(
    service: Service, inbox: Path, tmp_path: Path
) -> None:
    source = Path(shutil.copy(FIXTURES / "speech_a.wav", inbox / "talk.wav"))
    result = run_cli("transcribe", source, "--server", service.base_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"done    {source}",
        f"        -> {inbox / 'talk.txt'}",
        f"        -> {inbox / 'talk.srt'}",
    ]
    assert "(1 by path)" in result.stderr
    job = only_job(service)
    assert job["source_path"] == str(source) and job["source"] == "api"
    assert "museum" in (inbox / "talk.txt").read_text().lower()


def test_by_upload_outside_the_allowed_folders_into_output_dir(
    service: Service, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    source = Path(shutil.copy(FIXTURES / "speech_b.flac", elsewhere / "memo.flac"))
    out = tmp_path / "out"
    result = run_cli(
        "transcribe", source, "--server", service.base_url, "--output-dir", out,
        "--formats", "txt,vtt", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"done    {source}",
        f"        -> {out / 'memo.txt'}",
        f"        -> {out / 'memo.vtt'}",
    ]
    assert "(1 by upload)" in result.stderr
    assert sorted(path.name for path in out.iterdir()) == ["memo.txt", "memo.vtt"]
    assert "quarterly report" in (out / "memo.txt").read_text().lower()
    assert (out / "memo.vtt").read_text().startswith("WEBVTT")
    job = only_job(service)
    assert job["source"] == "upload" and job["options"]["formats"] == ["txt", "vtt"]  # type: ignore[index]
    assert [path.name for path in elsewhere.iterdir()] == ["memo.flac"]  # nothing beside it


def _private_mount(path: Path, content: Path, command: list[str]) -> list[str]:
    """command run with `content` mounted over `path` for it alone (a mount namespace of its
    own): the file at that path is another file to it than to the service, as on another
    machine with the same folders."""
    namespace = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        namespace = ["unshare", "--user", "--map-root-user", "--mount"]
    quoted = " ".join(f"'{part}'" for part in command)
    return [*namespace, "sh", "-c", f"mount --bind '{content}' '{path}' && exec {quoted}"]


def test_same_path_but_another_file_goes_as_upload(
    sqlite_url: str, inbox: Path, tmp_path: Path
) -> None:
    """The service checks the client's size and mtime before it records anything (412): no job
    of its own file is created and cancelled, so its inbox still takes that file."""
    shared = Path(shutil.copy(FIXTURES / "speech_a.wav", inbox / "talk.wav"))
    theirs = Path(shutil.copy(FIXTURES / "speech_b.flac", tmp_path / "mine.flac"))
    out = tmp_path / "out"
    with running_service(
        "--database-url", sqlite_url, "--inbox", inbox, "--workers", "1", "--formats", "txt",
        cwd=tmp_path, env=service_env(SETTLE_S="1"),
    ) as service:  # fmt: skip
        command = [COMMAND, "transcribe", str(shared), "--server", service.base_url]
        command += ["--output-dir", str(out), "--formats", "txt"]
        result = subprocess.run(
            _private_mount(shared, theirs, command),
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "(1 by upload)" in result.stderr
        # The client's file was transcribed, not the service's one at the same path.
        assert "quarterly report" in (out / "talk.txt").read_text().lower()

        def all_ended() -> list[dict[str, object]]:
            items: list[dict[str, object]] = service.client.get("/jobs").json()["items"]
            ended = all(job["status"] in ("done", "failed", "cancelled") for job in items)
            return items if len(items) >= 2 and ended else []

        # No job of the service's own file was cancelled: its inbox took it and it is done.
        jobs = wait_until(all_ended, 120, "the upload's and the inbox's jobs to end")
        assert sorted((str(job["source"]), job["status"]) for job in jobs) == [
            ("inbox", "done"),
            ("upload", "done"),
        ]
        [own] = [job for job in jobs if job["source"] == "inbox"]
        assert own["source_path"] == str(shared)
        assert "museum" in (inbox / "talk.txt").read_text().lower()


def test_files_of_one_name_take_numbered_names_in_output_dir(
    service: Service, tmp_path: Path
) -> None:
    """Two files of one run never write over each other's transcripts; a file from before the run
    is replaced."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = Path(shutil.copy(FIXTURES / "speech_a.wav", tmp_path / "a" / "talk.wav"))
    second = Path(shutil.copy(FIXTURES / "speech_b.flac", tmp_path / "b" / "talk.flac"))
    out = tmp_path / "subs"
    out.mkdir()
    (out / "talk.txt").write_text("from before the run\n")
    result = run_cli(
        "transcribe", first, second, "--server", service.base_url, "--output-dir", out,
        "--formats", "txt,srt", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"done    {first}",
        f"        -> {out / 'talk.txt'}",
        f"        -> {out / 'talk.srt'}",
        f"done    {second}",
        f"        -> {out / 'talk (2).txt'}",
        f"        -> {out / 'talk (2).srt'}",
    ]
    assert sorted(path.name for path in out.iterdir()) == [
        "talk (2).srt", "talk (2).txt", "talk.srt", "talk.txt",
    ]  # fmt: skip
    assert "museum" in (out / "talk.txt").read_text().lower()
    assert "quarterly report" in (out / "talk (2).txt").read_text().lower()
    assert "quarterly report" in (out / "talk (2).srt").read_text().lower()


def test_a_file_named_twice_is_sent_once(service: Service, inbox: Path, tmp_path: Path) -> None:
    source = Path(shutil.copy(FIXTURES / "speech_a.wav", inbox / "talk.wav"))
    elsewhere = Path(shutil.copy(FIXTURES / "speech_b.flac", tmp_path / "memo.flac"))
    again = inbox / ".." / "inbox" / "talk.wav"
    result = run_cli(
        "transcribe", source, elsewhere, again, elsewhere, "--server", service.base_url,
        "--formats", "txt", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"sent 2 job(s) to {service.base_url} (1 by path, 1 by upload)" in result.stderr
    assert [line for line in result.stdout.splitlines() if line.startswith("done")] == [
        f"done    {source}",
        f"done    {elsewhere}",
    ]
    assert len(service.client.get("/jobs").json()["items"]) == 2


def test_a_name_that_is_not_utf8_is_refused_and_the_others_go_on(
    service: Service, tmp_path: Path
) -> None:
    odd = Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.wav"))
    shutil.copy(FIXTURES / "speech_a.wav", odd)
    good = Path(shutil.copy(FIXTURES / "speech_b.flac", tmp_path / "memo.flac"))
    result = run_cli(
        "transcribe", odd, good, "--server", service.base_url, "--formats", "txt", cwd=tmp_path
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    # The line the local mode gives (db/errors.py check_storable).
    assert lines[0] == (
        f"refused {tmp_path}/caf\\xe9.wav: the name is not valid UTF-8, so it cannot be "
        "recorded; give it a UTF-8 name (for example with convmv -f latin1 -t utf-8)"
    )
    assert f"done    {good}" in lines
    [job] = service.client.get("/jobs").json()["items"]
    assert job["status"] == "done"


def test_a_server_that_is_not_the_service_is_one_line_naming_server_url(
    service: Service, tmp_path: Path
) -> None:
    source = Path(shutil.copy(FIXTURES / "speech_a.wav", tmp_path / "talk.wav"))
    port = free_port()
    other = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        other_url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(other_url), 30, "http.server to answer")
        for url in (other_url, f"{service.base_url}/prefix"):
            result = run_cli("transcribe", source, "--server", url, cwd=tmp_path)
            assert result.returncode == 2, (url, result.stdout, result.stderr)
            [line] = result.stderr.strip().splitlines()
            assert line.startswith(
                "error: setting server_url (--server or WHISPER_TRANSCRIBER_SERVER_URL)"
            ), line
            assert f"{url} is not a whisper-transcriber service" in line
            assert "404" in line
            assert result.stdout == ""
    finally:
        other.kill()
        other.wait()
    assert service.client.get("/jobs").json()["items"] == []


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.TransportError:
        return False
    return True


def test_a_service_without_workers_says_its_jobs_wait_and_waits(
    sqlite_url: str, inbox: Path, tmp_path: Path
) -> None:
    source = Path(shutil.copy(FIXTURES / "speech_a.wav", inbox / "talk.wav"))
    notes = tmp_path / "notes.txt"
    with running_service(
        "--database-url", sqlite_url, "--inbox", inbox, "--role", "api",
        cwd=tmp_path, env=service_env(),
    ) as service, notes.open("w") as notes_file:  # fmt: skip
        client = subprocess.Popen(
            [COMMAND, "transcribe", str(source), "--server", service.base_url],
            cwd=tmp_path, env=clean_env(), stdout=subprocess.DEVNULL, stderr=notes_file,
        )  # fmt: skip
        try:
            wait_until(lambda: "note: " in notes.read_text(), 60, "the note")
            # Past the note it follows the job: its /events request reaches the service.
            wait_until(lambda: '"GET /events' in service.log.read_text(), 60, "/events")
            assert client.poll() is None, notes.read_text()  # it waits
            note = [line for line in notes.read_text().splitlines() if "note: " in line]
            assert note == [
                f"note: the service at {service.base_url} runs no workers of its own: the job(s) "
                "wait in its queue until a worker takes them (one on another machine may); waiting"
            ]
            [job] = service.client.get("/jobs").json()["items"]
            assert job["status"] == "queued"
        finally:
            client.kill()
            client.wait()


def test_print_puts_the_text_on_stdout(service: Service, inbox: Path, tmp_path: Path) -> None:
    source = Path(shutil.copy(FIXTURES / "speech_c.ogg", inbox / "animals.ogg"))
    result = run_cli("transcribe", source, "--server", service.base_url, "--print", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "elephant" in result.stdout.lower()
    assert not result.stdout.startswith("done")
    assert f"done    {source}" in result.stderr.splitlines()


def test_a_failing_file_exits_non_zero_with_its_reason(
    service: Service, inbox: Path, tmp_path: Path
) -> None:
    good = Path(shutil.copy(FIXTURES / "speech_a.wav", inbox / "good.wav"))
    garbage = inbox / "noise.wav"
    garbage.write_bytes(b"RIFF" + bytes(range(256)) * 40)
    missing = tmp_path / "missing.wav"
    result = run_cli(
        "transcribe", garbage, missing, good, "--server", service.base_url, cwd=tmp_path
    )
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert f"done    {good}" in lines
    assert (
        f"failed  {garbage}: cannot decode {garbage}: Invalid data found when processing input"
        in lines
    )
    [refused] = [line for line in lines if line.startswith("refused")]
    assert refused == f"refused {missing}: cannot read it here: No such file or directory"
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("key_args", "detail"),
    [(["--api-key", "wrong"], "the API key is wrong"), ([], "an API key is required")],
)
def test_a_bad_key_is_one_line_naming_api_key(
    sqlite_url: str, inbox: Path, tmp_path: Path, key_args: list[str], detail: str
) -> None:
    source = Path(shutil.copy(FIXTURES / "speech_a.wav", inbox / "talk.wav"))
    with running_service(
        "--database-url", sqlite_url, "--inbox", inbox, "--workers", "1",
        cwd=tmp_path, env=service_env(API_KEY=KEY),
    ) as service:  # fmt: skip
        result = run_cli(
            "transcribe", source, "--server", service.base_url, *key_args, cwd=tmp_path
        )
        assert result.returncode == 2
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("error: setting api_key (--api-key or WHISPER_TRANSCRIBER_API_KEY)")
        assert detail in line
        assert service.client.get("/jobs", headers={"X-API-Key": KEY}).json()["items"] == []

        # The right key, from the environment, with the server from the config file.
        config = tmp_path / "client.toml"
        config.write_text(f'server_url = "{service.base_url}"\n')
        right = run_cli(
            "transcribe", source, "--config", config, cwd=tmp_path,
            env=clean_env(WHISPER_TRANSCRIBER_API_KEY=KEY),
        )  # fmt: skip
        assert right.returncode == 0, right.stderr
        assert f"done    {source}" in right.stdout.splitlines()


def test_an_unreachable_server_is_one_line_naming_server_url(tmp_path: Path) -> None:
    source = Path(shutil.copy(FIXTURES / "speech_a.wav", tmp_path / "talk.wav"))
    url = f"http://127.0.0.1:{free_port()}"
    result = run_cli(
        "transcribe", source, cwd=tmp_path, env=clean_env(WHISPER_TRANSCRIBER_SERVER_URL=url)
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: setting server_url (--server or WHISPER_TRANSCRIBER_SERVER_URL)")
    assert f"cannot reach the service at {url}" in line


def _port(service: Service) -> str:
    return service.base_url.rsplit(":", 1)[1]


def test_local_transcribe_hands_its_jobs_to_the_service_on_the_same_database(
    database_url: str, inbox: Path, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    source = Path(shutil.copy(FIXTURES / "speech_a.wav", media / "talk.wav"))
    with running_service(
        "--database-url", database_url, "--inbox", inbox, "--workers", "1",
        cwd=tmp_path, env=service_env(),
    ) as service:  # fmt: skip
        service.wait_for_workers(1)  # the rule asks for a worker that is up
        result = run_cli(
            "transcribe", source, "--database-url", database_url, "--formats", "txt",
            cwd=tmp_path, env=clean_env(WHISPER_TRANSCRIBER_PORT=_port(service)),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert f"handing 1 job(s) to the service at {service.base_url}" in result.stderr
        assert result.stdout.splitlines() == [
            f"done    {source}",
            f"        -> {media / 'talk.txt'}",
        ]
        # No worker started here (each logs "ready" once its model is loaded); the service's
        # own worker ran the job.
        assert " ready: " not in result.stderr
        store = JobStore(make_engine(database_url))
        [job] = store.list_jobs(JobQuery(), 100)
        store.engine.dispose()
        assert job.origin == "cli" and job.status.value == "done"
        assert re.search(rf"job {job.id}: done, ", service.log.read_text())
        assert "museum" in (media / "talk.txt").read_text().lower()


def test_local_transcribe_runs_its_own_pool_beside_a_service_on_another_database(
    sqlite_url: str, inbox: Path, tmp_path: Path
) -> None:
    source = Path(shutil.copy(FIXTURES / "speech_a.wav", tmp_path / "talk.wav"))
    own = f"sqlite:///{tmp_path / 'own.db'}"
    with running_service(
        "--database-url", sqlite_url, "--inbox", inbox, "--workers", "1",
        cwd=tmp_path, env=service_env(),
    ) as service:  # fmt: skip
        service.wait_for_workers(1)
        result = run_cli(
            "transcribe", source, "--database-url", own, "--formats", "txt",
            cwd=tmp_path, env=clean_env(WHISPER_TRANSCRIBER_PORT=_port(service)),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "handing" not in result.stderr and " ready: " in result.stderr
        assert result.stdout.splitlines() == [
            f"done    {source}",
            f"        -> {source.with_suffix('.txt')}",
        ]
        assert service.client.get("/jobs").json()["items"] == []


def test_following_survives_the_service_restarting(
    sqlite_url: str, inbox: Path, tmp_path: Path
) -> None:
    """The event stream breaks off with the service; the command reconnects, reads its job
    again, and follows it on the service started again in its place. The services run the fake
    engine, whose job works until the second one is up."""
    finish = tmp_path / "finish"
    source = plan(inbox / "long.wav", until=finish)
    port = free_port()
    args = ("--database-url", sqlite_url, "--inbox", inbox, "--workers", "1", "--formats", "txt")
    env = fake_engine_env(service_env())
    with running_service(*args, cwd=tmp_path, env=env, port=port) as first:
        client = subprocess.Popen(
            [COMMAND, "transcribe", str(source), "--server", first.base_url],
            cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            job_id = wait_until(
                lambda: (items := first.client.get("/jobs").json()["items"]) and items[0]["id"],
                60,
                "the command's job",
            )
            first.wait_status(job_id, "running")
            first.kill_all()
            with running_service(
                *args, cwd=tmp_path, env=env, port=port, log_name="again.log"
            ) as second:
                finish.touch()
                stdout, stderr = client.communicate(timeout=300)
                assert client.returncode == 0, stderr
                assert stdout.splitlines() == [
                    f"done    {source}",
                    f"        -> {inbox / 'long.txt'}",
                ]
                final = second.job(job_id)
                assert final["status"] == "done" and final["source"] == "api"
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
