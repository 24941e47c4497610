"""Local `transcribe` beside a service on the same database, where the hand-over must not cost
the user: a service whose workers cannot open the file, and a model this machine cannot load."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.helpers.cli import clean_env, run_cli
from tests.helpers.media import FIXTURES
from tests.helpers.service import running_service, service_env


def _hiding(folder: Path) -> list[str]:
    """A prefix that runs the service with an empty folder mounted over `folder`, for it alone
    (a mount namespace of its own): as a container or another user would, it cannot see the
    files this command names."""
    namespace = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        namespace = ["unshare", "--user", "--map-root-user", "--mount"]
    return [*namespace, "sh", "-c", f'mount -t tmpfs tmpfs \'{folder}\' && exec "$0" "$@"']


def test_no_hand_over_to_a_service_that_cannot_open_the_file(
    sqlite_url: str, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    source = Path(shutil.copy(FIXTURES / "speech_a.wav", media / "talk.wav"))
    with running_service(
        "--database-url", sqlite_url, "--inbox", inbox, "--workers", "1",
        cwd=tmp_path, env=service_env(), prefix=_hiding(media),
    ) as service:  # fmt: skip
        service.wait_for_workers(1)
        port = service.base_url.rsplit(":", 1)[1]
        result = run_cli(
            "transcribe", source, "--database-url", sqlite_url, "--formats", "txt",
            cwd=tmp_path, env=clean_env(WHISPER_TRANSCRIBER_PORT=port),
        )  # fmt: skip
        assert "handing" not in result.stderr
        assert f"does not open {source} (" in result.stderr
        # Its workers share the queue: whichever worker took the job, this one (done) or the
        # service's (which cannot see the file), the outcome says so.
        [job] = service.client.get("/jobs").json()["items"]
        if job["status"] == "done":
            assert result.returncode == 0, result.stderr
            assert "museum" in (media / "talk.txt").read_text().lower()
        else:
            assert result.returncode == 1
            assert "file not found" in job["error"] and "file not found" in result.stdout


def test_a_model_this_machine_cannot_load_does_not_stop_a_hand_over(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The model comes from the environment (a shared config), not a flag: the service's workers
    do the work, so this command never resolves it (offline, 'small' is nowhere here)."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    source = Path(shutil.copy(FIXTURES / "speech_a.wav", tmp_path / "talk.wav"))
    empty_cache = tmp_path / "no models"
    empty_cache.mkdir()
    with running_service(
        "--database-url", sqlite_url, "--inbox", inbox, "--workers", "1",
        cwd=tmp_path, env=service_env(),
    ) as service:  # fmt: skip
        service.wait_for_workers(1)
        port = service.base_url.rsplit(":", 1)[1]
        env = clean_env(
            WHISPER_TRANSCRIBER_PORT=port,
            WHISPER_TRANSCRIBER_MODEL="small",
            WHISPER_TRANSCRIBER_MODEL_CACHE_DIR=str(empty_cache),
            HF_HUB_OFFLINE="1",
        )
        result = run_cli(
            "transcribe", source, "--database-url", sqlite_url, "--formats", "txt",
            cwd=tmp_path, env=env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "handing 1 job(s)" in result.stderr
        assert "museum" in source.with_suffix(".txt").read_text().lower()
        assert list(empty_cache.iterdir()) == []
        # Told to run it here, the same model is refused in one line before anything is queued.
        again = run_cli(
            "transcribe", source, "--database-url", sqlite_url, "--local", "--force",
            cwd=tmp_path, env=env,
        )  # fmt: skip
        assert again.returncode == 2
        [line] = again.stderr.strip().splitlines()
        assert line.startswith("error: setting model (--model or WHISPER_TRANSCRIBER_MODEL)")
        assert len(service.client.get("/jobs").json()["items"]) == 1
