"""The layers point one way: each rule checked in a fresh interpreter, by what it has loaded.

From the top: service/ (settings, the CLI, the runner), api/, watcher/, worker/, db/; a layer
imports only those below it, so db/ (and the migrations, which import it) imports none of the
others and the worker never reaches up into the watcher, the API or the service. And the API,
the watcher and the CLI start without the model stack (faster-whisper, CTranslate2, numpy, PyAV),
which only worker processes load, and the CLI when it transcribes here. A failure names each
offending module and the chain of imports that brought it in."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers.paths import REPOSITORY

PACKAGE = "whisper_transcriber"
MIGRATIONS = REPOSITORY / "alembic" / "versions"
# What loading a model brings (faster-whisper's own imports among them).
MODEL_STACK = (
    "faster_whisper", "ctranslate2", "numpy", "av", "onnxruntime", "tokenizers", "huggingface_hub",
)  # fmt: skip
PROBE_TIMEOUT_S = 120

# Runs in a fresh interpreter: imports what argv names ("pkg.*": every module of a package; a
# path: a migration script) and prints the modules loaded, with the module that imported each.
PROBE = r"""
import importlib, importlib.util, json, pkgutil, sys

from tests.helpers.paths import REPOSITORY

importers = {}

class Recorder:
    # Notes the module whose code asks for each import; finds nothing itself.
    def find_spec(self, name, path=None, target=None):
        frame = sys._getframe(1)
        while frame is not None and frame.f_globals.get("__name__", "").startswith("importlib"):
            frame = frame.f_back
        importers.setdefault(name, frame.f_globals.get("__name__") if frame else None)
        return None

sys.meta_path.insert(0, Recorder())
for target in sys.argv[1:]:
    if target.endswith(".py"):
        name = "migration_" + target.rsplit("/", 1)[-1][:-3]
        spec = importlib.util.spec_from_file_location(name, target)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    elif target.endswith(".*"):
        package = importlib.import_module(target[:-2])
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(info.name)
    else:
        importlib.import_module(target)
print(json.dumps({"loaded": sorted(sys.modules), "importers": importers}))
"""


def _load(targets: list[str]) -> tuple[list[str], dict[str, str | None]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *targets],
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"importing {targets} failed:\n{done.stderr}"
    result = json.loads(done.stdout)
    return result["loaded"], result["importers"]


def _chain(module: str, importers: dict[str, str | None]) -> str:
    """The chain "a -> b -> module": who imported whom, from the module the probe imported."""
    links = [module]
    while (parent := importers.get(links[-1])) not in (None, "__main__") and parent not in links:
        links.append(parent)
    return " -> ".join(reversed(links))


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _offences(
    loaded: list[str], importers: dict[str, str | None], forbidden: tuple[str, ...]
) -> str:
    """Each forbidden module that a permitted one imported, with its chain (what the forbidden
    one imports in turn is its own business)."""
    entries = [
        module
        for module in loaded
        if _within(module, forbidden) and not _within(importers.get(module) or "", forbidden)
    ]
    # A package and its module came in together: the module says more.
    entries = [m for m in entries if not any(other.startswith(m + ".") for other in entries)]
    return "\n".join(f"  {module}: {_chain(module, importers)}" for module in entries)


def _layer(name: str) -> str:
    return f"{PACKAGE}.{name}"


@pytest.mark.parametrize(
    ("what", "targets", "forbidden"),
    [
        pytest.param(
            "db/ and the migrations",
            [f"{PACKAGE}.db.*", *map(str, sorted(MIGRATIONS.glob("*.py")))],
            tuple(map(_layer, ("worker", "api", "watcher", "service"))),
            id="db",
        ),
        pytest.param(
            "worker/",
            [f"{PACKAGE}.worker.*"],
            tuple(map(_layer, ("api", "watcher", "service"))),
            id="worker",
        ),
        pytest.param(
            "watcher/",
            [f"{PACKAGE}.watcher.*"],
            tuple(map(_layer, ("api", "service"))),
            id="watcher",
        ),
        pytest.param("api/", [f"{PACKAGE}.api.*"], (_layer("service"),), id="api"),
    ],
)
def test_a_layer_imports_nothing_above_it(
    what: str, targets: list[str], forbidden: tuple[str, ...]
) -> None:
    loaded, importers = _load(targets)
    offences = _offences(loaded, importers, forbidden)
    assert not offences, f"{what} must not import {', '.join(forbidden)}; it does:\n{offences}"


@pytest.mark.parametrize(
    ("what", "targets"),
    [
        pytest.param("the API app", [f"{PACKAGE}.api.app", f"{PACKAGE}.api.*"], id="api"),
        pytest.param("the watcher", [f"{PACKAGE}.watcher.*"], id="watcher"),
        pytest.param("the CLI", [f"{PACKAGE}.service.cli"], id="cli"),
    ],
)
def test_the_model_stack_stays_out_of_processes_that_do_not_transcribe(
    what: str, targets: list[str]
) -> None:
    loaded, importers = _load(targets)
    offences = _offences(loaded, importers, MODEL_STACK)
    assert not offences, (
        f"importing {what} must not load the model stack ({', '.join(MODEL_STACK)}); "
        f"it loads:\n{offences}"
    )


def test_a_rule_names_the_chain_that_breaks_it() -> None:
    """The probe sees what a fresh interpreter loads, and who asked for it."""
    loaded, importers = _load(["tomllib"])
    assert "tomllib._re" in loaded
    assert _offences(loaded, importers, ("tomllib._re",)) == (
        "  tomllib._re: tomllib -> tomllib._parser -> tomllib._re"
    )
