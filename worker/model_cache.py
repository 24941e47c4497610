"""The models one worker process holds: the default model, loaded at its start and kept for its
life, and the other configured models (the models setting), loaded when a job asks for one.

Those others live within a memory budget: before a model is loaded, the least recently used are
dropped until its expected size fits (what it took when last loaded, else its files' size), and
again once it is loaded and measured; one idle past the time-to-live is dropped between jobs. A model larger than the whole budget is
still loaded, alone beside the default. Sizes are measured as the process's resident memory
before and after the load, never less than the files' size."""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from whisper_transcriber.db.values import DEFAULT_MODEL_NAME
from whisper_transcriber.worker.engine import Engine, ModelSpec
from whisper_transcriber.worker.long_form import release_freed_memory

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NamedModel:
    """One entry of the models setting, resolved: where the weights are and how to run them."""

    spec: ModelSpec
    compute_type: str = "auto"


class UnknownModel(Exception):
    """A job names a model this worker is not configured with (claim() keeps such jobs away)."""


class ModelLoadFailed(Exception):
    """A configured model could not be loaded now (memory, a file being replaced): the attempt
    fails and the job is tried again, as for any other failure that may pass."""


@dataclass
class _Loaded:
    engine: Engine
    size: int
    last_used: float


def files_size(spec: ModelSpec) -> int:
    """The size of a local model folder's files (0 for a size name not yet downloaded)."""
    if not spec.is_local:
        return 0
    return sum(path.stat().st_size for path in Path(spec.name_or_path).iterdir() if path.is_file())


def resident_bytes() -> int:
    import psutil

    return int(psutil.Process(os.getpid()).memory_info().rss)


class ModelCache:
    def __init__(
        self,
        default: Engine,
        models: Mapping[str, NamedModel],
        load: Callable[[NamedModel], Engine],
        *,
        budget_bytes: int | None = None,
        idle_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        measure: Callable[[], int] = resident_bytes,
    ) -> None:
        self.default = default
        self.models = dict(models)
        self._load = load
        self.budget_bytes = budget_bytes
        self.idle_s = idle_s
        self._clock = clock
        self._measure = measure
        self._loaded: dict[str, _Loaded] = {}
        self._sizes: dict[str, int] = {}  # as measured at each model's last load
        self.loads = 0  # models loaded after the start (for the benchmarks and the logs)
        self._freeze_pending = False
        # Read by the heartbeat thread: replaced whole, never changed in place.
        self.names: tuple[str, ...] = (DEFAULT_MODEL_NAME,)

    def held(self) -> list[str | None]:
        """The models loaded now as job options name them (None: the default)."""
        return [None, *self._loaded]

    def known(self) -> list[str | None]:
        return [None, *self.models]

    def engine_for(self, name: str | None) -> Engine:
        """The engine for a job's model, loaded now if it must be (the loader's errors pass)."""
        if name is None:
            return self.default
        loaded = self._loaded.get(name)
        if loaded is None:
            loaded = self._load_named(name)
        loaded.last_used = self._clock()
        return loaded.engine

    def used(self, name: str | None) -> None:
        """A job for the model has just ended: it is idle from now."""
        loaded = self._loaded.get(name) if name is not None else None
        if loaded is not None:
            loaded.last_used = self._clock()
        if self._freeze_pending:  # what the load made, now that the job's own objects are gone
            self._freeze_pending = False
            gc.collect()
            gc.freeze()

    def drop_idle(self) -> float | None:
        """Drops the models idle past the time-to-live; seconds until the next one would be."""
        if self.idle_s is None:
            return None
        now = self._clock()
        for name, loaded in list(self._loaded.items()):
            if now - loaded.last_used >= self.idle_s:
                self._drop(name, f"unused for {self.idle_s:g} s")
        if not self._loaded:
            return None
        return max(min(loaded.last_used for loaded in self._loaded.values()) + self.idle_s - now, 0)

    def _load_named(self, name: str) -> _Loaded:
        choice = self.models.get(name)
        if choice is None:
            raise UnknownModel(
                f"model {name!r} is not configured here (models: "
                f"{', '.join([DEFAULT_MODEL_NAME, *self.models])})"
            )
        expected = self._sizes.get(name) or files_size(choice.spec)
        self._make_room(expected)
        before = self._measure()
        started = time.monotonic()
        try:
            engine = self._load(choice)
        except Exception as exc:  # the engine says why (ModelNotFound: "cannot load model ...")
            raise ModelLoadFailed(str(exc)) from exc
        size = max(self._measure() - before, files_size(choice.spec))
        self._sizes[name] = size
        loaded = _Loaded(engine, size, self._clock())
        self._make_room(size)  # the estimate may have been short (a size name: no files yet)
        self._loaded[name] = loaded
        self.loads += 1
        self.names = (DEFAULT_MODEL_NAME, *self._loaded)
        # Out of the collector's later sweeps, as at the start; after the job (used()), so that
        # none of the job's own objects is frozen with the model.
        self._freeze_pending = True
        log.info(
            "model %s loaded (%s) in %.1f s, %.0f MiB",
            name,
            choice.spec.name_or_path,
            time.monotonic() - started,
            size / 2**20,
        )
        return loaded

    def _make_room(self, expected: int) -> None:
        if self.budget_bytes is None:
            return
        while self._loaded and self._used() + expected > self.budget_bytes:
            least_recent = min(self._loaded, key=lambda name: self._loaded[name].last_used)
            self._drop(least_recent, "to make room within the memory budget")

    def _used(self) -> int:
        return sum(loaded.size for loaded in self._loaded.values())

    def _drop(self, name: str, why: str) -> None:
        del self._loaded[name]
        self.names = (DEFAULT_MODEL_NAME, *self._loaded)
        # Its objects were frozen out of the collector's sweeps after loading; a cycle among
        # them would never be freed. One full sweep (rare: a drop), then frozen again.
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        release_freed_memory()  # the weights' memory back to the system, not kept in the heap
        log.info("model %s dropped: %s", name, why)
