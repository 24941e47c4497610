"""The body of one worker process: load the model once, then claim and run jobs until told to stop."""

from __future__ import annotations

import logging
import os
import signal
import socket
from dataclasses import dataclass
from multiprocessing.synchronize import Event

from db.engine import make_engine
from db.errors import QueueError
from db.job_store import JobStore
from worker.engine import Engine, ModelSpec
from worker.job_runner import run_job

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker process needs, as plain picklable values (processes are spawned)."""

    database_url: str
    model: ModelSpec
    device: str
    compute_type: str
    threads: int
    lease_s: float
    poll_interval_s: float
    log_level: str = "INFO"


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_main(config: WorkerConfig, stop: Event, parent_pid: int) -> None:
    """Entry point of a spawned worker process; it exits when stop is set or its parent is gone."""
    # Ctrl-C reaches the whole process group; the parent decides how workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=config.log_level, format="%(asctime)s %(levelname)s [%(processName)s] %(message)s"
    )
    db_engine = make_engine(config.database_url)
    store = JobStore(db_engine, lease_s=config.lease_s)
    engine = Engine(config.model, config.device, config.compute_type, config.threads)
    me = worker_id()
    log.info(
        "worker %s ready: %s on %s/%s",
        me,
        config.model.name_or_path,
        engine.device,
        engine.compute_type,
    )
    try:
        while not stop.is_set():
            if os.getppid() != parent_pid:  # the service died without stopping us (kill -9)
                log.warning("worker %s: parent process is gone; exiting", me)
                break
            try:
                job = store.claim(me)
            except QueueError as exc:
                log.warning("worker %s: cannot claim: %s", me, exc)
                job = None
            if job is None:
                stop.wait(config.poll_interval_s)
                continue
            run_job(store, engine, job)
    finally:
        db_engine.dispose()
