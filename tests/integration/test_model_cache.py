"""A worker's models (no model is loaded: the loader and the memory are the test's; in this tier
as dropping a model asks glibc to trim its heap, found through ldconfig): the default kept for good, the others loaded on demand within a memory
budget (least recently used dropped first) and dropped when idle past the time-to-live."""

from __future__ import annotations

from typing import cast

import pytest

from whisper_transcriber.worker.engine import Engine, ModelSpec
from whisper_transcriber.worker.model_cache import (
    ModelCache,
    ModelLoadFailed,
    NamedModel,
    UnknownModel,
)

MIB = 2**20


class Machine:
    """The cache's clock and the process's memory, moved by the test; loads take memory."""

    def __init__(self) -> None:
        self.now = 0.0
        self.resident = 100 * MIB
        self.loaded: list[str] = []

    def load(self, choice: NamedModel) -> Engine:
        self.loaded.append(choice.spec.name_or_path)
        self.resident += SIZES[choice.spec.name_or_path]
        return ENGINES[choice.spec.name_or_path]


SIZES = {"small": 400 * MIB, "base": 500 * MIB, "medium": 800 * MIB, "large": 3000 * MIB}
MODELS = {name: NamedModel(ModelSpec(name)) for name in SIZES}
ENGINES = {name: cast(Engine, object()) for name in SIZES}  # stand-ins: nothing is loaded
DEFAULT = cast(Engine, object())


def cache(machine: Machine, **kwargs: float | int | None) -> ModelCache:
    return ModelCache(
        DEFAULT,
        MODELS,
        machine.load,
        clock=lambda: machine.now,
        measure=lambda: machine.resident,
        **kwargs,  # type: ignore[arg-type]
    )


def test_the_default_needs_no_load_and_others_load_once() -> None:
    machine = Machine()
    models = cache(machine)
    assert models.engine_for(None) is DEFAULT
    assert models.engine_for("small") is ENGINES["small"]
    assert models.engine_for("small") is ENGINES["small"]
    assert machine.loaded == ["small"]
    assert models.held() == [None, "small"]
    assert models.names == ("default", "small")


def test_the_least_recently_used_makes_room_within_the_budget() -> None:
    machine = Machine()
    models = cache(machine, budget_bytes=1300 * MIB)
    models.engine_for("small")
    machine.now = 1
    models.engine_for("medium")  # 400 + 800 fit
    machine.now = 2
    models.engine_for("small")  # used again: medium is now the least recent
    machine.now = 3
    models.engine_for("medium")
    assert machine.loaded == ["small", "medium"]
    machine.now = 4
    machine.resident -= 400 * MIB  # what dropping gives back (measured sizes stay known)
    # "large" alone is over the budget: everything else goes, and it is loaded all the same.
    models.engine_for("large")
    assert models.held() == [None, "large"]
    machine.now = 5
    models.engine_for("small")  # small's measured 400 MiB and large's 3000 are over 1300
    assert models.held() == [None, "small"]
    assert machine.loaded == ["small", "medium", "large", "small"]
    assert models.loads == 4


def test_the_oldest_goes_first_when_a_new_one_does_not_fit() -> None:
    machine = Machine()
    models = cache(machine, budget_bytes=1300 * MIB)
    models.engine_for("medium")
    machine.now = 1
    models.engine_for("small")
    machine.now = 2
    models.engine_for("medium")  # small is now the least recently used
    assert models.held() == [None, "medium", "small"]  # 1200 MiB: both fit
    machine.now = 3
    models.engine_for("base")  # 500 more: small goes, medium (used later) stays
    assert models.held() == [None, "medium", "base"]


def test_idle_models_are_dropped_after_the_time_to_live() -> None:
    machine = Machine()
    models = cache(machine, idle_s=600)
    assert models.drop_idle() is None  # nothing but the default: nothing will expire
    models.engine_for("small")
    machine.now = 100
    models.engine_for("medium")
    machine.now = 500
    assert models.drop_idle() == pytest.approx(100)  # small expires at 600
    machine.now = 650
    assert models.drop_idle() == pytest.approx(50)  # small dropped; medium at 700
    assert models.held() == [None, "medium"]
    machine.now = 700
    assert models.drop_idle() is None
    assert models.held() == [None]
    assert models.engine_for(None) is DEFAULT  # the default stays whatever the time


def test_a_model_not_configured_here_is_refused_with_the_names() -> None:
    models = cache(Machine())
    with pytest.raises(UnknownModel, match=r"'tiny'.*default, small, base, medium, large"):
        models.engine_for("tiny")


def test_idle_counts_from_the_end_of_the_last_job() -> None:
    machine = Machine()
    models = cache(machine, idle_s=600)
    models.engine_for("small")  # a job starts at 0 and runs for 15 minutes
    machine.now = 900
    models.used("small")
    machine.now = 1000
    assert models.drop_idle() == pytest.approx(500)
    assert models.held() == [None, "small"]


def test_a_load_that_fails_leaves_nothing_held() -> None:
    machine = Machine()

    def out_of_memory(choice: NamedModel) -> Engine:
        raise RuntimeError("CUDA failed with error out of memory")

    models = ModelCache(DEFAULT, MODELS, out_of_memory, measure=lambda: machine.resident)
    with pytest.raises(ModelLoadFailed, match="out of memory"):
        models.engine_for("small")
    assert models.held() == [None]
    assert models.names == ("default",)
