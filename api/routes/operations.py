"""Readiness and Prometheus metrics."""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from whisper_transcriber.api.app_context import ApiContext
from whisper_transcriber.api.deps import Context
from whisper_transcriber.api.schemas import ErrorOut, Readiness
from whisper_transcriber.db.errors import DatabaseReadOnly, DatabaseRefused, DatabaseUnavailable

router = APIRouter(tags=["operations"])


@router.get(
    "/ready",
    responses={503: {"model": Readiness, "description": "Not ready: the reasons are listed"}},
)
def ready(context: Context, response: Response) -> Readiness:
    """Ready when the database answers and takes writes and, in a process that runs workers,
    all are up."""
    problems = []
    try:
        context.store.ping()
    except DatabaseReadOnly as exc:
        problems.append(f"database refuses writes: {exc}")
    except DatabaseUnavailable as exc:
        problems.append(f"database unreachable: {exc}")
    except DatabaseRefused as exc:  # a file that is not this service's database, say
        problems.append(f"database refused the check: {exc}")
    workers = context.workers
    if workers is not None and workers.ready() < workers.size:
        problems.append(f"{workers.ready()} of {workers.size} workers are up")
    if problems:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(ready=not problems, problems=problems)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"},
        503: {"model": ErrorOut, "description": "The database is unavailable"},
    },
)
def metrics(context: Context) -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(context))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class QueueCollector(Collector):
    """Read at scrape time from the database (shared by every instance) and this pool."""

    def __init__(self, context: ApiContext) -> None:
        self.context = context

    def collect(self):  # type: ignore[no-untyped-def]
        stats = self.context.store.stats()
        jobs = GaugeMetricFamily(
            "whisper_transcriber_jobs", "Jobs in the database by status", labels=["status"]
        )
        for job_status, count in stats.jobs.items():
            jobs.add_metric([job_status.value], count)
        yield jobs
        yield GaugeMetricFamily(
            "whisper_transcriber_queue_depth", "Queued jobs that are due now", stats.queue_depth
        )
        yield CounterMetricFamily(
            "whisper_transcriber_audio_seconds", "Seconds of audio transcribed", stats.audio_s
        )
        yield CounterMetricFamily(
            "whisper_transcriber_processing_seconds",
            "Seconds spent transcribing, claim to transcript",
            stats.processing_s,
        )
        yield GaugeMetricFamily(
            "whisper_transcriber_real_time_factor",
            "Audio seconds per processing second, all time (per worker)",
            stats.real_time_factor,
        )
        workers = self.context.workers
        if workers is not None:
            yield CounterMetricFamily(
                "whisper_transcriber_worker_restarts",
                "Worker processes replaced after dying or timing out",
                workers.restarts,
            )
            yield CounterMetricFamily(
                "whisper_transcriber_worker_recycles",
                "Worker processes replaced by design (job count or memory ceiling)",
                workers.recycles,
            )
            state = GaugeMetricFamily(
                "whisper_transcriber_worker_state", "Worker processes by state", labels=["state"]
            )
            busy, up = workers.busy(), workers.ready()
            state.add_metric(["busy"], busy)
            state.add_metric(["idle"], max(up - busy, 0))
            state.add_metric(["down"], max(workers.size - up, 0))
            yield state
        registered = GaugeMetricFamily(
            "whisper_transcriber_registered_workers",
            "Every instance's worker processes in the registry, by role and state (stale: silent "
            "too long); every instance reports them all: aggregate with max, not sum",
            labels=["instance", "role", "state"],
        )
        counts: Counter[tuple[str, str, str]] = Counter()
        for worker in self.context.worker_registry().workers():
            shown = "stale" if worker.stale else worker.state.value
            counts[worker.instance, worker.role, shown] += 1
        for labels, count in sorted(counts.items()):
            registered.add_metric(list(labels), count)
        yield registered
        deliveries = GaugeMetricFamily(
            "whisper_transcriber_webhook_deliveries",
            "Webhook deliveries kept, by status (pending: not yet answered with 2xx; failed: "
            "given up)",
            labels=["status"],
        )
        for delivery_status, count in self.context.webhook_outbox().counts().items():
            deliveries.add_metric([delivery_status], count)
        yield deliveries
