"""A real `whisper-transcriber serve` in a subprocess, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.helpers.cli import COMMAND, clean_env
from tests.helpers.waiting import wait_until

START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60
JOB_DEADLINE_S = 180


def service_env(**settings: str) -> dict[str, str]:
    """The environment of a service under test: settings by name (WORKERS="2"), over defaults
    that keep the watcher and the idle poll out of the way unless a test wants them."""
    defaults = {
        "SETTLE_S": "600",  # the watcher stays out of the way: jobs come through the API
        "RETRY_DELAY_S": "0.2",
        "POLL_INTERVAL_S": "600",  # only wake-ups get work to idle workers
    }
    defaults.update(settings)
    return clean_env(**{f"WHISPER_TRANSCRIBER_{k}": v for k, v in defaults.items()})


def unprivileged() -> tuple[str, ...]:
    """The command prefix that runs the service as root without root's power over file
    permissions (setpriv drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH): a file without read
    permission is then unreadable to it, as to any service account. Nothing when not root."""
    if os.geteuid() != 0:
        return ()
    return ("setpriv", "--bounding-set=-dac_override,-dac_read_search")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Service:
    def __init__(self, process: subprocess.Popen[str], port: int, log: Path) -> None:
        self.process = process
        self.base_url = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=self.base_url, timeout=10)
        self.log = log

    def healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"service exited early:\n{self.log.read_text()}")
        try:
            return self.client.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    def submit(self, path: Path, **options: object) -> int:
        """POST /transcribe by server path with options beside it (formats=["srt"], force=True);
        the new (or existing) job's id."""
        body: dict[str, object] = {"path": str(path), **options}
        response = self.client.post("/transcribe", json=body)
        assert response.status_code in (200, 202), response.text
        job_id: int = response.json()["id"]
        return job_id

    def job(self, job_id: int) -> dict[str, Any]:
        response = self.client.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    def wait_status(
        self, job_id: int, *statuses: str, timeout: float = JOB_DEADLINE_S
    ) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            current = self.job(job_id)
            return current if current["status"] in statuses else None

        return wait_until(reached, timeout, f"job {job_id} to be {' or '.join(statuses)}")

    def wait_for_workers(self, count: int) -> None:
        """Until `count` workers have loaded their model (they log it)."""
        wait_until(
            lambda: self.log.read_text().count(" ready: ") >= count,
            START_TIMEOUT_S,
            f"{count} worker(s) to be ready",
        )

    def kill_all(self) -> None:
        """kill -9 of the whole service at once: the main process and its workers (one group)."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        wait_until(
            lambda: not group_members(self.process.pid), 30, "the service's processes to be gone"
        )

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(STOP_TIMEOUT_S)
        self.client.close()
        return code


@contextmanager
def running_service(
    *args: str | Path,
    cwd: Path,
    env: dict[str, str] | None = None,
    wait_healthy: bool = True,
    log_name: str = "service.log",
    prefix: Sequence[str] = (),
    port: int | None = None,
) -> Iterator[Service]:
    """`serve` in a process group of its own (so that the test can kill all of it at once);
    `prefix` runs it under another command (setpriv, to drop root's privileges); `port` a given
    one (a service started again where its clients expect it), else a free one."""
    port = port or free_port()
    log = cwd / log_name
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [*prefix, COMMAND, "serve", "--port", str(port), *map(str, args)],
            cwd=cwd,
            env=env or clean_env(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    service = Service(process, port, log)
    try:
        if wait_healthy:
            wait_until(service.healthy, START_TIMEOUT_S, "the service to answer /health")
        yield service
    finally:
        service.client.close()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _live_processes() -> Iterator[tuple[int, list[str]]]:
    """(pid, the fields of /proc/PID/stat after the name) of every process that is not a zombie."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            yield int(stat.parent.name), fields


def children_of(pid: int) -> list[int]:
    """Live child processes of pid, read from /proc."""
    return [child for child, fields in _live_processes() if int(fields[1]) == pid]


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group."""
    return [member for member, fields in _live_processes() if int(fields[2]) == pgid]


def worker_processes(pid: int) -> list[int]:
    """The service's worker processes (not multiprocessing's resource tracker)."""
    return [
        child
        for child in children_of(pid)
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
