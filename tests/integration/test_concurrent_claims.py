"""Several real processes claim one batch at once: no job is claimed twice and none is lost."""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Barrier
from pathlib import Path

from whisper_transcriber.db.engine import make_engine
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.transcript import Transcript
from whisper_transcriber.db.values import JobOptions

CLAIMERS = 4
BATCH = 200
EMPTY = Transcript(language="en", language_probability=1.0, duration=1.0)


def claim_until_empty(
    database_url: str, name: str, start: Barrier, results: multiprocessing.Queue
) -> None:  # type: ignore[type-arg]
    engine = make_engine(database_url)
    store = JobStore(engine)
    claimed = []
    start.wait()
    while (job := store.claim(name)) is not None:
        claimed.append(job.id)
        store.complete(job.id, job.attempts, EMPTY)
    engine.dispose()
    results.put((name, claimed))


def test_concurrent_claimers_take_each_job_exactly_once(database_url: str, tmp_path: Path) -> None:
    store = JobStore(make_engine(database_url))
    ids = {
        store.enqueue(tmp_path / f"file-{n:03}.wav", JobOptions(), "test")[0].id
        for n in range(BATCH)
    }
    assert len(ids) == BATCH

    context = multiprocessing.get_context("spawn")
    start = context.Barrier(CLAIMERS)
    results = context.Queue()
    processes = [
        context.Process(target=claim_until_empty, args=(database_url, f"w{n}", start, results))
        for n in range(CLAIMERS)
    ]
    for process in processes:
        process.start()
    claims = dict(results.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(30)
        assert process.exitcode == 0

    everything = [job_id for claimed in claims.values() for job_id in claimed]
    assert len(everything) == len(set(everything)), "a job was claimed twice"
    assert set(everything) == ids, "a job was lost"
    final = store.get_many(sorted(ids))
    assert all(job.status is JobStatus.DONE and job.attempts == 1 for job in final)
    store.engine.dispose()
