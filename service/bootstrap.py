"""Turn settings into ready parts (database, store, model, layout), or one SettingError."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine as DbEngine

from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.worker_registry import WorkerRegistry, WorkerRole, instance_name
from whisper_transcriber.service.database import (
    job_store,
    open_database,
    retry_policy,
    worker_registry,
)
from whisper_transcriber.service.inboxes import confinement
from whisper_transcriber.service.logs import worker_logging
from whisper_transcriber.service.settings import SettingError, Settings, usable_cores
from whisper_transcriber.worker.engine import (
    EngineNotFound,
    ModelNotFound,
    ModelSpec,
    engine_class,
    resolve_compute_type,
    resolve_device,
    resolve_model,
    unsupported,
)
from whisper_transcriber.worker.layout import Layout, default_layout
from whisper_transcriber.worker.model_cache import NamedModel
from whisper_transcriber.worker.models import fetch
from whisper_transcriber.worker.process import Recycling, WorkerConfig
from whisper_transcriber.worker.split_files import SplitRules
from whisper_transcriber.worker.supervisor import WorkerPool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    settings: Settings
    db: DbEngine
    store: JobStore
    model: ModelSpec
    device: str
    compute_type: str
    layout: Layout
    models: dict[str, NamedModel] = field(default_factory=dict)  # the models setting, resolved

    @property
    def registry(self) -> WorkerRegistry:
        return worker_registry(self.settings, self.store)

    def worker_config(self, role: WorkerRole = WorkerRole.SERVICE) -> WorkerConfig:
        return WorkerConfig(
            database_url=self.settings.database_url,
            model=self.model,
            device=self.device,
            compute_type=self.compute_type,
            threads=self.layout.threads_per_worker,
            lease_s=self.settings.lease_s,
            poll_interval_s=self.settings.poll_interval_s,
            retry_policy=retry_policy(self.settings),
            confinement=confinement(self.settings),
            logging_setup=worker_logging(self.settings.log_level, self.settings.log_format),
            recycling=Recycling(
                max_jobs=self.settings.worker_max_jobs,
                max_memory_bytes=(
                    int(self.settings.worker_max_memory_mb * 2**20)
                    if self.settings.worker_max_memory_mb
                    else None
                ),
            ),
            max_audio_duration_s=self.settings.max_audio_duration_s,
            niceness=self.settings.worker_niceness,
            engine=self.settings.engine,
            instance=instance_name(self.settings.instance_name),
            role=role,
            models=self.models,
            model_memory_bytes=(
                int(self.settings.model_memory_mb * 2**20)
                if self.settings.model_memory_mb
                else None
            ),
            model_idle_s=self.settings.model_idle_s,
            prefer_held_s=self.settings.model_switch_after_s,
            split=SplitRules(self.settings.split_after_s, self.settings.split_piece_s),
        )

    def worker_pool(
        self,
        size: int | None = None,
        on_failure: Callable[[str], None] | None = None,
        role: WorkerRole = WorkerRole.SERVICE,
    ) -> WorkerPool:
        return WorkerPool(
            self.worker_config(role),
            size or self.layout.workers,
            self.store,
            job_timeout_s=self.settings.job_timeout_s,
            on_failure=on_failure,
        )


def prepare(settings: Settings, db: DbEngine | None = None) -> Prepared:
    """The model, device and layout resolved, the database open (or `db`, already open)."""
    try:
        model = resolve_model(settings.model, settings.model_cache_dir)
        if "work" in settings.roles:  # a size name: from the cache, or downloaded once, here
            model = fetch(model)
    except ModelNotFound as exc:
        raise SettingError("model", str(exc)) from exc
    if "work" in settings.roles:
        try:  # a wrong name stops start-up with one line, not every worker at its start
            engine_class(settings.engine)
        except EngineNotFound as exc:
            raise SettingError("engine", str(exc)) from exc
    device = resolve_device(settings.device)
    compute_type = resolve_compute_type(settings.compute_type, device)
    problem = unsupported(device, compute_type)
    if problem is not None:
        raise SettingError(*problem)
    models = {
        name: _named_model(f"models.{name}", entry.model, entry.compute_type, device, settings)
        for name, entry in settings.models.items()
    }
    db = db if db is not None else open_database(settings)
    layout = default_layout(device, usable_cores(), settings.workers, settings.threads_per_worker)
    if settings.device == "auto":
        log.info(
            "device auto: %s, %s",
            "CTranslate2 sees a CUDA GPU: using it"
            if device == "cuda"
            else "no CUDA GPU seen by CTranslate2: using the CPU",
            compute_type,
        )
    return Prepared(
        settings=settings,
        db=db,
        store=job_store(settings, db),
        model=model,
        device=device,
        compute_type=compute_type,
        layout=layout,
        models=models,
    )


def _named_model(
    setting: str, model: str, compute_type: str, device: str, settings: Settings
) -> NamedModel:
    """One entry of the models setting, checked as the model setting is (SettingError)."""
    try:
        spec = resolve_model(model, settings.model_cache_dir)
        if "work" in settings.roles:
            spec = fetch(spec)
    except ModelNotFound as exc:
        raise SettingError(setting, str(exc)) from exc
    resolved = resolve_compute_type(compute_type, device)
    problem = unsupported(device, resolved)
    if problem is not None:
        raise SettingError(setting, problem[1])
    return NamedModel(spec, resolved)
