"""A request to run a periodic task now, made while it runs, is not lost: the run goes round
once more (APScheduler would skip an overlapping run until the task's next turn)."""

from __future__ import annotations

import threading

import pytest

from tests.helpers.waiting import wait_until
from whisper_transcriber.service.run_again import RunAgain

WAIT_S = 30.0


def test_a_request_during_a_run_runs_it_once_more() -> None:
    started = threading.Semaphore(0)
    release = threading.Event()
    runs: list[int] = []

    def task() -> None:
        runs.append(len(runs) + 1)
        started.release()
        release.wait(WAIT_S)

    task_runner = RunAgain(task)
    assert not task_runner.again_if_running()  # none under way: the scheduler is asked
    thread = threading.Thread(target=task_runner, daemon=True)
    thread.start()
    assert started.acquire(timeout=WAIT_S)
    assert task_runner.again_if_running()
    assert task_runner.again_if_running()  # two requests during one run: one more run
    release.set()
    wait_until(lambda: not thread.is_alive(), WAIT_S, "the runs to end")
    assert runs == [1, 2]
    assert not task_runner.again_if_running()


def test_a_failing_run_does_not_leave_it_marked_running() -> None:
    def task() -> None:
        raise RuntimeError("the database went away")

    task_runner = RunAgain(task)
    with pytest.raises(RuntimeError):
        task_runner()
    assert not task_runner.again_if_running()
