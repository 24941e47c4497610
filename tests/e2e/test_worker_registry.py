"""The worker registry: rows, heartbeats and staleness on both databases; which holders are gone
(never another machine's worker because it shares this hostname); a worker's registration;
`check`, handover and /status."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from subprocess import PIPE

import psutil
import pytest
from sqlalchemy import Engine, delete, insert

from tests.helpers.cli import run_cli
from tests.helpers.fake_engine import fake_engine_env
from tests.helpers.jobs import Clock
from tests.helpers.service import running_service, service_env, worker_processes
from tests.helpers.waiting import wait_until
from whisper_transcriber.db import engine as db_engine_module
from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.db.errors import DatabaseRefused
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.migrate import upgrade
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.process_identity import process_alive, process_start, this_machine
from whisper_transcriber.db.values import JobOptions
from whisper_transcriber.db.worker_registry import (
    WORKERS,
    WorkerRegistry,
    WorkerRole,
    WorkerState,
)
from whisper_transcriber.service.handover import serving_workers
from whisper_transcriber.service.liveness import check_workers
from whisper_transcriber.worker.hand_back import hand_back_orphans
from whisper_transcriber.worker.registration import Registration

ME = os.getpid()


def dead_process() -> tuple[int, float]:
    """The pid and start of a process that has ended (a child, reaped)."""
    # It waits on its stdin, which stays open until it is killed.
    child = psutil.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=PIPE)
    started = process_start(child.pid)
    child.kill()
    child.wait()
    assert child.stdin is not None
    child.stdin.close()
    assert started is not None
    return child.pid, started


def my_start() -> float:
    started = process_start(ME)
    assert started is not None
    return started


def another_namespace() -> str:
    """This kernel boot, another pid namespace (a container beside us with this hostname)."""
    machine = this_machine()
    assert machine is not None, "the tests run on Linux"
    boot, namespace = machine.rsplit("/", 1)
    return f"{boot}/{int(namespace) + 1}"


def add_row(
    engine: Engine,
    worker_id: str,
    *,
    machine: str | None,
    pid: int,
    pid_started: float,
    instance: str = "elsewhere",
    role: WorkerRole = WorkerRole.SERVICE,
) -> None:
    """A registry row as another process (or another machine) would have written it."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(WORKERS).values(
                id=worker_id,
                instance=instance,
                role=role.value,
                host=socket.gethostname(),  # the same hostname as this machine
                machine=machine,
                pid=pid,
                pid_started=pid_started,
                state="busy",
                job_id=None,
                started_at=now,
                heartbeat_at=now,
                stopped_at=None,
            )
        )


def running_job(store: JobStore, source: Path, worker_id: str) -> int:
    source.write_bytes(b"not really audio")
    job, _created = store.enqueue(source, JobOptions(), origin="api")
    claimed = store.claim(worker_id)
    assert claimed is not None and claimed.id == job.id
    return job.id


def test_a_process_is_told_from_one_that_reused_its_pid() -> None:
    pid, started = dead_process()
    assert not process_alive(pid, started)
    assert process_alive(ME, my_start())
    assert not process_alive(ME, my_start() - 1)  # another process, once, under this pid


def test_rows_heartbeats_and_staleness(db_engine: Engine) -> None:
    clock = Clock()
    registry = WorkerRegistry(db_engine, stale_after_s=30, clock=clock)
    registry.register("host:aa:1", "one", WorkerRole.SERVICE)
    registry.register("host:bb:2", "two", WorkerRole.COMMAND)
    [first] = registry.workers(instance="one")
    assert (first.state, first.pid, first.pid_started, first.machine) == (
        WorkerState.STARTING,
        ME,
        my_start(),
        this_machine(),
    )
    assert first.live and first.heartbeat_age_s == 0

    clock.advance(20)
    assert registry.beat("host:aa:1", WorkerState.BUSY, 7)
    clock.advance(15)  # the second worker is silent for 35 s
    by_id = {worker.id: worker for worker in registry.workers()}
    assert (by_id["host:aa:1"].state, by_id["host:aa:1"].job_id) == (WorkerState.BUSY, 7)
    assert not by_id["host:aa:1"].stale and by_id["host:bb:2"].stale
    assert by_id["host:bb:2"].heartbeat_age_s == 35

    registry.stopped("host:bb:2")
    assert [worker.id for worker in registry.workers()] == ["host:aa:1"]
    [stopped] = [w for w in registry.workers(include_stopped=True) if w.id == "host:bb:2"]
    assert stopped.state is WorkerState.STOPPED and not stopped.stale and not stopped.live

    clock.advance(3000)  # silent for 50 minutes, stopped for 50: both kept
    assert registry.forget() == 0
    clock.advance(1200)  # silent for an hour and more: removed; stopped for a day: not yet
    assert registry.forget() == 1
    assert not registry.beat("host:aa:1", WorkerState.IDLE, None)  # forgotten: it registers again
    clock.advance(86400)
    assert registry.forget() == 1 and registry.workers(include_stopped=True) == []


def test_a_worker_of_another_machine_with_this_hostname_keeps_its_job(
    db_engine: Engine, tmp_path: Path
) -> None:
    """Its pid does not exist here, which proved it dead when orphans were guessed from the
    hostname and the pid; the registry knows the row is not of this machine (another boot, or
    this boot and another pid namespace: a container beside us)."""
    store = JobStore(db_engine)
    registry = WorkerRegistry(db_engine, clock=store.clock)
    pid, started = dead_process()
    holders = {
        f"{socket.gethostname()}:other:{pid}": "another-boot/4026531836",
        f"{socket.gethostname()}:beside:{pid}": another_namespace(),
    }
    jobs = {}
    for worker_id, machine in holders.items():
        add_row(db_engine, worker_id, machine=machine, pid=pid, pid_started=started)
        jobs[worker_id] = running_job(store, tmp_path / f"{len(jobs)}.wav", worker_id)

    assert hand_back_orphans(store, registry) == []
    for worker_id, job_id in jobs.items():
        job = store.get(job_id)
        assert (job.status, job.worker_id) == (JobStatus.RUNNING, worker_id)
    assert registry.mark_dead_here() == 0


def test_a_dead_worker_of_this_machine_hands_its_job_back_at_once(
    db_engine: Engine, tmp_path: Path
) -> None:
    store = JobStore(db_engine)
    registry = WorkerRegistry(db_engine, clock=store.clock)
    pid, started = dead_process()
    dead = f"{socket.gethostname()}:dead:{pid}"
    add_row(db_engine, dead, machine=this_machine(), pid=pid, pid_started=started)
    alive = f"{socket.gethostname()}:alive:{ME}"
    add_row(db_engine, alive, machine=this_machine(), pid=ME, pid_started=my_start())
    # A pid given to another process since: the start tells them apart.
    reused = f"{socket.gethostname()}:reused:{ME}"
    add_row(db_engine, reused, machine=this_machine(), pid=ME, pid_started=my_start() - 100)
    legacy = f"{socket.gethostname()}:{pid}"  # an earlier version's id: not in the registry
    jobs = {
        name: running_job(store, tmp_path / f"{name}.wav", worker)
        for name, worker in (
            ("dead", dead),
            ("alive", alive),
            ("reused", reused),
            ("legacy", legacy),
        )
    }

    assert sorted(hand_back_orphans(store, registry)) == sorted([jobs["dead"], jobs["reused"]])
    for name in ("dead", "reused"):
        job = store.get(jobs[name])
        # Its attempt is not used up: the allowance grows by the one handed back.
        assert (job.status, job.attempts, job.max_attempts) == (JobStatus.QUEUED, 1, 4)
    for name in ("alive", "legacy"):  # the legacy one waits for its lease, as before
        assert store.get(jobs[name]).status is JobStatus.RUNNING
    gone = {worker.id for worker in registry.workers(include_stopped=True) if worker.stopped_at}
    assert gone == {dead, reused}


def test_idle_dead_workers_of_this_machine_are_marked_stopped(db_engine: Engine) -> None:
    """A pool killed with -9: its idle workers held no job, and the periodic care says so."""
    registry = WorkerRegistry(db_engine)
    pid, started = dead_process()
    add_row(db_engine, "here:dead:1", machine=this_machine(), pid=pid, pid_started=started)
    add_row(db_engine, "here:alive:2", machine=this_machine(), pid=ME, pid_started=my_start())
    add_row(db_engine, "beside:3", machine=another_namespace(), pid=pid, pid_started=started)
    assert registry.tidy() == 1
    assert {worker.id for worker in registry.workers()} == {"here:alive:2", "beside:3"}


def test_check_counts_this_instances_live_workers_on_this_machine(db_engine: Engine) -> None:
    registry = WorkerRegistry(db_engine)
    verdict = check_workers(registry, "box-a")
    assert not verdict.healthy and "no worker of its pool" in verdict.lines[0]
    pid, started = dead_process()
    # History, not this instance's workers now: a dead process of this machine, a worker of the
    # container this one replaced (another pid namespace), a `transcribe` command's own pool.
    add_row(
        db_engine,
        "a:dead:1",
        machine=this_machine(),
        pid=pid,
        pid_started=started,
        instance="box-a",
    )
    add_row(
        db_engine,
        "a:old:2",
        machine=another_namespace(),
        pid=ME,
        pid_started=my_start(),
        instance="box-a",
    )
    add_row(
        db_engine, "a:cli:3", machine=this_machine(), pid=ME, pid_started=my_start(),
        instance="box-a", role=WorkerRole.COMMAND,
    )  # fmt: skip
    assert not check_workers(registry, "box-a").healthy
    add_row(
        db_engine,
        "a:live:4",
        machine=this_machine(),
        pid=ME,
        pid_started=my_start(),
        instance="box-a",
    )
    verdict = check_workers(registry, "box-a")
    assert verdict.healthy and verdict.lines[0] == "instance box-a: 1 worker(s) alive", verdict
    assert not check_workers(registry, "box-b").healthy


def test_only_a_services_live_pool_serves_the_database(db_engine: Engine) -> None:
    """What `transcribe` asks before handing its jobs over: a command's own pool does not
    count, nor a service worker of this machine that has died without a word."""
    registry = WorkerRegistry(db_engine)
    add_row(
        db_engine,
        "cli:1",
        machine=this_machine(),
        pid=ME,
        pid_started=my_start(),
        role=WorkerRole.COMMAND,
    )
    pid, started = dead_process()
    add_row(db_engine, "dead:2", machine=this_machine(), pid=pid, pid_started=started)
    assert serving_workers(registry) == 0
    add_row(db_engine, "far:3", machine="another-boot/1", pid=pid, pid_started=started)
    assert serving_workers(registry) == 1  # beating, elsewhere: its death would be heard
    add_row(db_engine, "here:4", machine=this_machine(), pid=ME, pid_started=my_start())
    assert serving_workers(registry) == 2


def test_registration_keeps_trying_and_registers_again_once_forgotten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A short wait on the lock: the first try fails quickly, the next beat tries again.
    monkeypatch.setattr(db_engine_module, "SQLITE_BUSY_TIMEOUT_MS", 100)
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    engine = make_engine(url)
    upgrade(engine)
    registry = WorkerRegistry(engine)
    busy = sqlite3.connect(tmp_path / "jobs.db", timeout=0)
    busy.execute("BEGIN EXCLUSIVE")  # another writer holds the database for a while
    doing = (WorkerState.IDLE, None)
    registration = Registration(registry, "w:1:1", "box", WorkerRole.SERVICE, lambda: doing, 0.05)
    try:
        registration.start()
        assert not registration.registered.is_set()  # no claim until it is registered
        busy.rollback()
        wait_until(registration.registered.is_set, 30, "the registration once the lock is gone")
        wait_until(
            lambda: [w.state for w in registry.workers()] == [WorkerState.IDLE],
            30,
            "a heartbeat saying idle",
        )
        with engine.begin() as conn:  # forgotten, as after an hour's silence (forget())
            conn.execute(delete(WORKERS))
        wait_until(lambda: registry.workers() != [], 30, "the forgotten worker to register again")
    finally:
        registration.close()
        busy.close()
    [stopped] = registry.workers(include_stopped=True)
    assert stopped.state is WorkerState.STOPPED
    engine.dispose()


def test_a_refused_registration_is_a_start_failure(tmp_path: Path) -> None:
    """A database that refuses the row (no workers table, no right to write it) would leave a
    worker that never claims: it fails to start instead, with the reason."""
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # never migrated
    registration = Registration(
        WorkerRegistry(engine), "w:1:1", "box", WorkerRole.SERVICE, lambda: (WorkerState.IDLE, None)
    )
    with pytest.raises(DatabaseRefused, match="workers"):
        registration.start()
    engine.dispose()


def check(tmp_path: Path, database_url: str, **settings: str) -> tuple[int, str]:
    result = run_cli("check", cwd=tmp_path, env=service_env(DATABASE_URL=database_url, **settings))
    return result.returncode, result.stdout + result.stderr


def test_check_and_status_follow_the_registry(sqlite_url: str, tmp_path: Path) -> None:
    """One database is enough here: the rows, beats and staleness these read are tested on both
    above, and a worker claims nothing until it has registered, so every PostgreSQL service test
    that finishes a job has registered its workers there."""
    database_url = sqlite_url
    env = fake_engine_env(
        service_env(DATABASE_URL=database_url, WORKERS="2", INSTANCE_NAME="box-a")
    )
    code, output = check(tmp_path, database_url, INSTANCE_NAME="box-a")
    assert code == 1 and "no worker of its pool runs on this machine" in output, output

    with running_service("--role", "api,work", cwd=tmp_path, env=env) as service:
        service.wait_for_workers(2)

        def both_idle() -> list[dict[str, object]] | None:
            instances = service.client.get("/status").json()["instances"]
            workers = instances[0]["workers"] if instances else []
            return workers if [w["state"] for w in workers] == ["idle", "idle"] else None

        workers = wait_until(both_idle, 60, "both workers to beat as idle")
        assert {w["pid"] for w in workers} == set(worker_processes(service.process.pid))
        code, output = check(tmp_path, database_url, INSTANCE_NAME="box-a")
        assert code == 0 and "instance box-a: 2 worker(s) alive" in output, output
        # Another instance's name: these workers are not its own.
        code, output = check(tmp_path, database_url, INSTANCE_NAME="box-b")
        assert code == 1, output
        metrics = service.client.get("/metrics").text
        assert (
            'whisper_transcriber_registered_workers{instance="box-a",role="service",state="idle"} 2.0'
            in metrics
        )

        # A worker that stops beating (frozen) turns stale; the other one keeps beating.
        frozen = int(str(workers[0]["pid"]))
        os.kill(frozen, signal.SIGSTOP)
        try:

            def one_stale() -> str | None:
                code, output = check(
                    tmp_path, database_url, INSTANCE_NAME="box-a", WORKER_STALE_AFTER_S="10"
                )
                return output if code == 1 else None

            output = wait_until(one_stale, 60, "the frozen worker to be reported stale")
            assert "1 of 2 worker(s) stale" in output and f":{frozen}: idle" in output, output
        finally:
            os.kill(frozen, signal.SIGCONT)

        # A worker killed is replaced; the supervisor marks the dead one's row stopped.
        os.kill(frozen, signal.SIGKILL)

        def replaced() -> list[dict[str, object]] | None:
            workers = both_idle()
            return workers if workers and frozen not in {w["pid"] for w in workers} else None

        wait_until(replaced, 60, "the killed worker's replacement to beat")
        registry = WorkerRegistry(make_engine(database_url))
        [dead] = [w for w in registry.workers(include_stopped=True) if w.pid == frozen]
        assert dead.state is WorkerState.STOPPED and dead.stopped_at is not None
        registry.engine.dispose()
    # Stopped: its workers said so, and none runs.
    code, output = check(tmp_path, database_url, INSTANCE_NAME="box-a")
    assert code == 1 and "no worker" in output, output


def test_check_does_not_fail_for_a_database_that_does_not_answer(tmp_path: Path) -> None:
    """Workers wait for their database; restarting them for its outage would lose their work."""
    code, output = check(tmp_path, "postgresql://root@127.0.0.1:9/whisper")
    assert code == 0 and "cannot tell, the database does not answer" in output, output
    # A database that answers and refuses (never migrated) is a fault of this instance.
    code, output = check(tmp_path, f"sqlite:///{tmp_path / 'never-migrated.db'}")
    assert code != 0, output
