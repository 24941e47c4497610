"""PostgreSQL for the tests: the shared server (a fresh database per test is made from it by
tests/conftest.py), and a private server of one test's own, which that test may stop and start."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

from tests.helpers.service import free_port

# The shared server; CI fails (never skips) when it cannot be reached.
POSTGRES_ADMIN_URL = os.environ.get(
    "WT_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/postgres"
)
# Debian's layout: /usr/lib/postgresql/VERSION/bin holds initdb and pg_ctl.
BINARIES = Path("/usr/lib/postgresql")
SERVER_USER = "postgres"  # the server refuses to run as root
PG_CTL_TIMEOUT_S = 120


def admin() -> psycopg.Connection[tuple[object, ...]]:
    """A connection to the shared server's maintenance database."""
    try:
        return psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is required for the tests and unreachable at {POSTGRES_ADMIN_URL}: {exc}",
            pytrace=False,
        )


def url_for(database: str) -> str:
    """The URL of a database on the shared server."""
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{database}"


def _bin(name: str) -> str:
    """The newest installed version's program; missing fails, it never skips."""
    found = sorted(BINARIES.glob(f"*/bin/{name}"), key=lambda path: int(path.parts[-3]))
    if not found:
        pytest.fail(f"PostgreSQL's {name} is not installed under {BINARIES}", pytrace=False)
    return str(found[-1])


class PrivateServer:
    """A PostgreSQL server of one test's own: a cluster made with initdb in a temporary folder,
    on a free port, its socket in that folder. Stopping it touches nothing any other test (or
    another xdist worker) uses. As root, the server runs as the postgres account; the superuser
    is root, with trust authentication, as on the shared server."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="wt-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self._as_server: tuple[str, ...] = ()
        if os.geteuid() == 0:
            account = pwd.getpwnam(SERVER_USER)
            os.chown(self.folder, account.pw_uid, account.pw_gid)
            self._as_server = ("runuser", "-u", SERVER_USER, "--")
        user = "root" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self._run(
            _bin("initdb"), "-D", str(self.data), "-U", user, "-A", "trust", "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip
        self.admin_url = f"postgresql://{user}@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        done = subprocess.run(
            [*self._as_server, *command],
            capture_output=True,
            text=True,
            timeout=PG_CTL_TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.folder / "server.log")
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", log, "-o", options, "-w", "start")

    def stop(self) -> None:
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def create_database(self, name: str) -> str:
        """A new, empty database on this server; its URL."""
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.admin_url.rsplit("/", 1)[0] + f"/{name}"

    def remove(self) -> None:
        """Stop the server if it runs, and delete its folder."""
        if (self.data / "postmaster.pid").exists():
            self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)
