"""A real `whisper-transcriber serve` in a subprocess, for end-to-end tests."""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.cli import COMMAND, clean_env
from tests.waiting import wait_until

START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60


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

    def wait_for_workers(self, count: int) -> None:
        """Until `count` workers have loaded their model (they log it)."""
        wait_until(
            lambda: self.log.read_text().count(" ready: ") >= count,
            START_TIMEOUT_S,
            f"{count} worker(s) to be ready",
        )

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(STOP_TIMEOUT_S)
        self.client.close()
        return code


@contextmanager
def running_service(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None, wait_healthy: bool = True
) -> Iterator[Service]:
    port = free_port()
    log = cwd / "service.log"
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [COMMAND, "serve", "--port", str(port), *map(str, args)],
            cwd=cwd,
            env=env or clean_env(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            text=True,
        )
    service = Service(process, port, log)
    try:
        if wait_healthy:
            wait_until(service.healthy, START_TIMEOUT_S, "the service to answer /health")
        yield service
    finally:
        service.client.close()
        if process.poll() is None:
            process.kill()
            process.wait()


def children_of(pid: int) -> list[int]:
    """Live child processes of pid, read from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


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
