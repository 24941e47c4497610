"""CI: the wheel built from this checkout works from any folder, as pip and pipx install it.

Builds the wheel, installs it into a fresh virtual environment outside the checkout (and with
pipx), then runs from an unrelated folder: `db upgrade` on a new and on an already-migrated
database (SQLite and PostgreSQL), `transcribe FILE`, `jobs`, and `serve` (the API, the dashboard
at /, /docs, the watcher and the workers transcribing a dropped file). Standard library only:
it runs with the machine's python3.11. Any failure ends it with the command's output.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SPEECH = REPO / "tests" / "fixtures" / "speech_a.wav"
POSTGRES = os.environ.get("WT_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/postgres")
DEADLINE_S = 300


def run(command: list[str | Path], cwd: Path, env: dict[str, str], expect: str = "") -> str:
    started = time.monotonic()
    done = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True
    )
    output = done.stdout + done.stderr
    shown = " ".join(str(part) for part in command)
    if done.returncode != 0 or expect not in output:
        sys.exit(f"FAILED ({done.returncode}): {shown}\n  in {cwd}\n{output}")
    print(f"ok  {time.monotonic() - started:6.1f} s  {shown}")
    return output


def wait_for(what: str, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"FAILED: timed out waiting for {what}")
        time.sleep(0.2)


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except OSError:
        return 0, b""


def build_wheel(into: Path) -> Path:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", into, REPO], REPO, env)
    [wheel] = into.glob("whisper_transcriber-*.whl")
    names = {name.split("/", 1)[0] for name in zipfile.ZipFile(wheel).namelist()}
    top = {name for name in names if not name.endswith(".dist-info")}
    if top != {"whisper_transcriber"}:
        sys.exit(f"FAILED: the wheel installs top-level names {sorted(top)}")
    return wheel


def clean_env(home: Path, bin_dir: Path) -> dict[str, str]:
    """Nothing of the checkout or of a developer's settings leaks into the installed commands."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHISPER_TRANSCRIBER_")}
    env.pop("PYTHONPATH", None)
    env.update(HOME=str(home), PATH=f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    env["WHISPER_TRANSCRIBER_WORKERS"] = "1"
    return env


def check_installed(python: Path, env: dict[str, str], elsewhere: Path) -> None:
    where = run(
        [python, "-c", "import whisper_transcriber.db.migrate as m; print(m.__file__)"],
        elsewhere,
        env,
    ).strip()
    if str(REPO) in where or "site-packages" not in where:
        sys.exit(f"FAILED: the code comes from {where}, not from the installed wheel")


def database_commands(command: Path, env: dict[str, str], elsewhere: Path) -> None:
    for _ in range(2):  # a new database, then an already-migrated one
        run([command, "db", "upgrade"], elsewhere, env, "up to date")
    name = f"wheel_smoke_{uuid.uuid4().hex[:10]}"
    admin = POSTGRES
    run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], elsewhere, env)
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    try:
        for _ in range(2):
            run([command, "db", "upgrade", "--database-url", url], elsewhere, env, "up to date")
        speech = elsewhere / "postgres talk.wav"
        shutil.copy(SPEECH, speech)
        run([command, "transcribe", speech, "--database-url", url], elsewhere, env, "done")
        run([command, "jobs", "--database-url", url], elsewhere, env, str(speech))
    finally:
        run(["psql", admin, "-qc", f"DROP DATABASE {name} WITH (FORCE)"], elsewhere, env)


def transcribe_and_list(command: Path, env: dict[str, str], elsewhere: Path) -> None:
    speech = elsewhere / "talk.wav"
    shutil.copy(SPEECH, speech)
    run([command, "transcribe", speech], elsewhere, env, "done")
    text = (elsewhere / "talk.txt").read_text().strip()
    if not text:
        sys.exit("FAILED: talk.txt is empty")
    run([command, "jobs"], elsewhere, env, str(speech))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serve(command: Path, env: dict[str, str], elsewhere: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    inbox = elsewhere / "inbox"
    inbox.mkdir()
    log = (elsewhere / "serve.log").open("w")
    started = time.monotonic()
    process = subprocess.Popen(
        [str(command), "serve", "--port", str(port), "--inbox", str(inbox)],
        cwd=elsewhere,
        env={**env, "WHISPER_TRANSCRIBER_SETTLE_S": "0.5"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def healthy() -> bool:
            if process.poll() is not None:
                sys.exit(f"FAILED: serve exited:\n{(elsewhere / 'serve.log').read_text()}")
            return get(base + "/health")[0] == 200

        wait_for("serve's /health", healthy)
        for path, marker in (
            ("/", b"<html"),
            ("/docs", b"swagger-ui"),
            ("/docs/assets/swagger-ui-bundle.js", b"SwaggerUIBundle"),
            ("/openapi.json", b'"/transcribe"'),
        ):
            status, body = get(base + path)
            if status != 200 or marker not in body:
                sys.exit(f"FAILED: GET {path} answered {status}")
        shutil.copy(SPEECH, inbox / "dropped.wav")

        def transcribed() -> bool:
            status, body = get(base + "/jobs")
            items = json.loads(body)["items"] if status == 200 else []
            failed = [job for job in items if job["status"] == "failed"]
            if failed:
                sys.exit(f"FAILED: {failed}")
            done.extend(job for job in items if job["status"] == "done")
            return bool(done)

        done: list[dict[str, Any]] = []
        wait_for("the dropped file's transcript", transcribed)
        [text] = [Path(path) for path in done[0]["outputs"] if path.endswith(".txt")]
        if not text.read_text().strip():
            sys.exit(f"FAILED: {text} is empty")
        print(f"ok  {time.monotonic() - started:6.1f} s  serve: /, /docs, the inbox, a worker")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            sys.exit("FAILED: serve did not stop on SIGTERM")
        log.close()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="wheel-smoke-") as scratch:
        root = Path(scratch)
        wheel = build_wheel(root / "dist")
        home = root / "home"
        home.mkdir()

        venv = root / "venv"
        base_env = clean_env(home, venv / "bin")
        run([sys.executable, "-m", "venv", venv], root, base_env)
        run([venv / "bin" / "pip", "install", "-q", wheel], root, base_env)
        elsewhere = root / "somewhere else"
        elsewhere.mkdir()
        check_installed(venv / "bin" / "python", base_env, elsewhere)
        command = venv / "bin" / "whisper-transcriber"
        database_commands(command, base_env, elsewhere)
        transcribe_and_list(command, base_env, elsewhere)
        serve(command, base_env, elsewhere)

        # pipx: its own environment for the tool, the command on a bin folder of its own.
        tools = root / "pipx-tool"
        run([sys.executable, "-m", "venv", tools], root, base_env)
        run([tools / "bin" / "pip", "install", "-q", "pipx"], root, base_env)
        pipx_bin = root / "pipx-bin"
        pipx_env = clean_env(home, pipx_bin)
        pipx_env.update(PIPX_HOME=str(root / "pipx-home"), PIPX_BIN_DIR=str(pipx_bin))
        run([tools / "bin" / "pipx", "install", wheel], root, pipx_env)
        by_pipx = root / "pipx user"
        by_pipx.mkdir()
        command = pipx_bin / "whisper-transcriber"
        run([command, "db", "upgrade"], by_pipx, pipx_env, "up to date")
        transcribe_and_list(command, pipx_env, by_pipx)
    print("the wheel works from any folder")


if __name__ == "__main__":
    main()
