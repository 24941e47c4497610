"""The supervised pool with real worker processes and real signals, on SQLite and PostgreSQL.

What is tested here is the supervision, not the model: the workers run the fake engine
(tests/helpers/fake_engine.py), whose jobs work until the test lets them finish, or hang; only
the tests of a model that cannot load use the real engine."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from tests.helpers.cli import run_cli
from tests.helpers.fake_engine import fake_engine_env, plan
from tests.helpers.media import FIXTURES, place
from tests.helpers.service import (
    JOB_DEADLINE_S,
    STOP_TIMEOUT_S,
    running_service,
    service_env,
    worker_processes,
)
from tests.helpers.waiting import wait_until
from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.values import JobOptions
from whisper_transcriber.worker.engine import resolve_model


def outputs_of(source: Path) -> list[str]:
    return sorted(
        p.name for p in source.parent.iterdir() if p.name != source.name and source.stem in p.name
    )


def test_killed_worker_is_replaced_and_its_job_runs_again(
    database_url: str, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    finish = tmp_path / "finish"
    source = plan(inbox / "long.wav", until=finish)
    with running_service(
        "--database-url", database_url, "--inbox", inbox, "--workers", "1",
        cwd=tmp_path, env=fake_engine_env(service_env()),
    ) as service:  # fmt: skip
        job_id = service.submit(source)
        running = wait_until(
            lambda: (current := service.job(job_id))["progress"] > 0 and current,
            JOB_DEADLINE_S,
            "the job to be part-way through",
        )
        assert running["status"] == "running" and running["attempts"] == 1
        os.kill(int(running["worker_id"].rsplit(":", 1)[1]), signal.SIGKILL)
        finish.touch()  # attempt 1 is dead; attempt 2 may finish

        done = service.wait_status(job_id, "done", "failed")
        assert done["status"] == "done", done
        assert done["attempts"] == 2
        assert service.stop() == 0
    assert outputs_of(source) == sorted(
        f"long.{fmt}" for fmt in ("txt", "srt", "vtt", "json", "tsv")
    )
    assert not [p for p in inbox.iterdir() if p.name.endswith(".tmp")]
    log = service.log.read_text()
    assert "died with exit code -9" in log and "restarted" in log


def test_job_past_timeout_fails_its_attempts_and_pool_goes_on(
    database_url: str, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    slow = plan(inbox / "long.wav", hang=True)  # never ends by itself
    quick = place(FIXTURES / "speech_a.wav", inbox)
    with running_service(
        "--database-url", database_url, "--inbox", inbox, "--workers", "1",
        "--job-timeout-s", "1", "--max-attempts", "2",
        cwd=tmp_path, env=fake_engine_env(service_env()),
    ) as service:  # fmt: skip
        slow_id = service.submit(slow)
        failed = service.wait_status(slow_id, "done", "failed")
        assert failed["status"] == "failed"
        assert failed["error"] == "timed out after 1 s"
        assert failed["attempts"] == 2
        quick_id = service.submit(quick)
        assert service.wait_status(quick_id, "done", "failed")["status"] == "done"
        assert service.stop() == 0
    assert not [p for p in inbox.iterdir() if p.name.endswith(".tmp")]
    assert not (inbox / "long.txt").exists()
    assert service.log.read_text().count("timed out after 1 s; killing") == 2


def broken_model(folder: Path) -> Path:
    """A folder that looks like a model (so start-up checks pass) but cannot be loaded."""
    folder.mkdir()
    shutil.copy(Path(resolve_model("bundled").name_or_path) / "config.json", folder)
    (folder / "model.bin").write_bytes(b"not a model")
    return folder


def test_worker_that_cannot_start_stops_the_service(database_url: str, tmp_path: Path) -> None:
    model = broken_model(tmp_path / "broken-model")
    with running_service(
        "--database-url", database_url, "--inbox", tmp_path, "--model", model, "--workers", "1",
        cwd=tmp_path, env=service_env(), wait_healthy=False,
    ) as service:  # fmt: skip
        code = service.process.wait(JOB_DEADLINE_S)
    assert code == 1
    log = service.log.read_text()
    assert "error: worker processes cannot start: cannot load model" in log
    assert log.count("could not start") == 3


def test_transcribe_with_a_broken_model_is_one_error_line(
    database_url: str, tmp_path: Path
) -> None:
    model = broken_model(tmp_path / "broken-model")
    source = place(FIXTURES / "speech_a.wav", tmp_path / "media")
    result = run_cli(
        "transcribe", source, "--model", model, "--database-url", database_url,
        "--log-level", "ERROR", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "worker processes cannot start: cannot load model" in errors[0]
    assert "Traceback" not in result.stderr


def test_sigterm_lets_running_jobs_finish_within_grace(database_url: str, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    finish = tmp_path / "finish"
    first = plan(inbox / "first.wav", until=finish)
    second = plan(inbox / "second.wav", until=finish)
    with running_service(
        "--database-url", database_url, "--inbox", inbox, "--workers", "1",
        cwd=tmp_path, env=fake_engine_env(service_env(SHUTDOWN_GRACE_S="120")),
    ) as service:  # fmt: skip
        first_id = service.submit(first)
        second_id = service.submit(second)
        service.wait_status(first_id, "running")
        service.process.send_signal(signal.SIGTERM)
        wait_until(
            lambda: "stopped claiming; 1 running job(s) get 120 s" in service.log.read_text(),
            30,
            "the pool to stop claiming",
        )
        finish.touch()  # the running job ends within the grace; the queued one must not start
        assert service.process.wait(STOP_TIMEOUT_S) == 0
    store = JobStore(make_engine(database_url))
    assert store.get(first_id).status.value == "done"
    assert store.get(second_id).status.value == "queued"
    assert (inbox / "first.txt").exists() and not (inbox / "second.txt").exists()
    store.engine.dispose()


def test_sigterm_hands_back_what_cannot_finish_in_grace(database_url: str, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    finish = tmp_path / "finish"
    source = plan(inbox / "long.wav", until=finish)
    args = ("--database-url", database_url, "--inbox", inbox, "--workers", "1")
    env = fake_engine_env(service_env(SHUTDOWN_GRACE_S="0"))
    with running_service(*args, cwd=tmp_path, env=env) as service:
        job_id = service.submit(source)
        service.wait_status(job_id, "running")
        assert service.stop() == 0
    store = JobStore(make_engine(database_url))
    handed_back = store.get(job_id)
    assert handed_back.status.value == "queued" and handed_back.attempts == 1
    assert handed_back.max_attempts - handed_back.attempts == 3  # the attempt was not used up
    assert not [p for p in inbox.iterdir() if p.name.endswith(".tmp")]

    finish.touch()
    with running_service(*args, cwd=tmp_path, env=fake_engine_env(service_env())) as service:
        assert service.wait_status(job_id, "done", "failed")["status"] == "done"
        assert service.stop() == 0
    store.engine.dispose()


def test_second_signal_ends_at_once_and_next_start_resumes(
    database_url: str, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    finish = tmp_path / "finish"
    source = plan(inbox / "long.wav", until=finish)
    args = ("--database-url", database_url, "--inbox", inbox, "--workers", "1")
    # A lease far longer than the test: only the hand-back at start can bring the job back in time.
    env = fake_engine_env(service_env(LEASE_S="3600", SHUTDOWN_GRACE_S="600"))
    with running_service(*args, cwd=tmp_path, env=env) as service:
        job_id = service.submit(source)
        service.wait_status(job_id, "running")
        service.process.send_signal(signal.SIGTERM)
        wait_until(lambda: "shutting down" in service.log.read_text(), 30, "shutdown to begin")
        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(30) == 1
    store = JobStore(make_engine(database_url))
    assert store.get(job_id).status.value == "running"  # nobody handed it back yet

    finish.touch()
    with running_service(*args, cwd=tmp_path, env=env) as service:
        assert service.wait_status(job_id, "done", "failed")["status"] == "done"
        assert service.stop() == 0
    assert "handed back 1 job(s)" in service.log.read_text()
    store.engine.dispose()


def test_idle_worker_is_woken_by_an_enqueue_in_the_service(
    database_url: str, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    source = place(FIXTURES / "speech_a.wav", inbox)
    with running_service(
        "--database-url", database_url, "--inbox", inbox, "--workers", "1",
        cwd=tmp_path, env=fake_engine_env(service_env()),
    ) as service:  # fmt: skip
        service.wait_for_workers(1)
        job_id = service.submit(source)  # no poll for 600 s: only the wake-up can get it done
        assert service.wait_status(job_id, "done", "failed")["status"] == "done"
        assert service.stop() == 0


def test_workers_run_below_the_services_priority(database_url: str, tmp_path: Path) -> None:
    """Worker processes are niced (worker_niceness) so that the API and the watcher, in the
    service's own process, get the cores first while every worker transcribes."""
    (tmp_path / "inbox").mkdir()
    with running_service(
        "--database-url", database_url, "--inbox", tmp_path / "inbox", "--workers", "2",
        cwd=tmp_path, env=fake_engine_env(service_env(WORKER_NICENESS="7")),
    ) as service:  # fmt: skip
        service.wait_for_workers(2)
        own = os.getpriority(os.PRIO_PROCESS, service.process.pid)
        workers = worker_processes(service.process.pid)
        assert len(workers) == 2
        assert [os.getpriority(os.PRIO_PROCESS, pid) for pid in workers] == [min(own + 7, 19)] * 2
        assert service.stop() == 0


def test_a_worker_killed_in_its_sleep_does_not_stop_wake_ups(
    database_url: str, tmp_path: Path
) -> None:
    """kill -9 (or the OOM killer) of a worker waiting for work: with a shared condition the next
    wake-up waited for it forever, holding up the request that enqueued; each worker has its
    own pipe now."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    first = place(FIXTURES / "speech_a.wav", tmp_path / "media")
    second = place(FIXTURES / "speech_c.ogg", tmp_path / "media")
    with running_service(
        "--database-url", database_url, "--inbox", inbox, "--workers", "2",
        cwd=tmp_path, env=fake_engine_env(service_env(ALLOWED_ROOTS=str(first.parent))),
    ) as service:  # fmt: skip
        service.wait_for_workers(2)
        sleeper, *_ = worker_processes(service.process.pid)
        os.kill(sleeper, signal.SIGKILL)
        service.wait_for_workers(3)  # its replacement
        # Only wake-ups get work to idle workers here (no poll for 600 s).
        for source in (first, second):
            job_id = service.submit(source)
            assert service.wait_status(job_id, "done", "failed")["status"] == "done"
        assert service.stop() == 0


def test_idle_worker_is_woken_by_an_enqueue_on_another_machine(
    postgres_url: str, tmp_path: Path
) -> None:
    """PostgreSQL only: NOTIFY carries another process's enqueue to this service's workers."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    source = place(FIXTURES / "speech_c.ogg", tmp_path / "elsewhere")
    with running_service(
        "--database-url", postgres_url, "--inbox", inbox, "--workers", "1",
        cwd=tmp_path, env=fake_engine_env(service_env(ALLOWED_ROOTS=str(source.parent))),
    ) as service:  # fmt: skip
        service.wait_for_workers(1)
        store = JobStore(make_engine(postgres_url))
        queued, _ = store.enqueue(source, JobOptions(formats=("txt",)), "another-machine")
        assert service.wait_status(queued.id, "done", "failed")["status"] == "done"
        assert service.stop() == 0
        store.engine.dispose()
