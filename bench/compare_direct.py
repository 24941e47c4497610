"""Check: the service's transcript of real recordings equals faster-whisper's own.

Each file goes through `whisper-transcriber transcribe` (the queue, a worker process, the json
output) and through WhisperModel.transcribe directly with the same model and options; the segments'
text and times must be identical.

    python bench/compare_direct.py ../shared/audio/jfk.flac [more files...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

OPTION_SETS: list[dict[str, Any]] = [
    {},
    {"vad_filter": True, "word_timestamps": True},
    {"language": "en", "beam_size": 1},
]
COMMAND = str(Path(sys.executable).parent / "whisper-transcriber")


def flags(options: dict[str, Any]) -> list[str]:
    result = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        result += [flag] if value is True else [flag, str(value)]
    return result


def via_service(
    source: Path, options: dict[str, Any], workdir: Path
) -> list[tuple[float, float, str]]:
    copy = workdir / source.name
    shutil.copy(source, copy)
    subprocess.run(
        [COMMAND, "transcribe", str(copy), "--formats", "json", "--database-url",
         f"sqlite:///{workdir / 'jobs.db'}", "--log-level", "WARNING", *flags(options)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    data = json.loads(copy.with_suffix(".json").read_text())
    return [(s["start"], s["end"], s["text"]) for s in data["segments"]]


def direct(model: Any, source: Path, options: dict[str, Any]) -> list[tuple[float, float, str]]:
    import ctranslate2

    from whisper_transcriber.db.values import JobOptions
    from whisper_transcriber.worker.engine import SAMPLING_SEED, transcribe_kwargs

    ctranslate2.set_random_seed(SAMPLING_SEED)

    segments, _ = model.transcribe(str(source), **transcribe_kwargs(JobOptions(**options)))
    return [(s.start, s.end, s.text) for s in segments]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()

    from faster_whisper import WhisperModel

    from whisper_transcriber.worker.engine import resolve_model

    model = WhisperModel(
        resolve_model("bundled").name_or_path, device="cpu", compute_type="int8", cpu_threads=1
    )
    mismatches = 0
    for source in args.files:
        for options in OPTION_SETS:
            with tempfile.TemporaryDirectory() as workdir:
                service = via_service(source.resolve(), options, Path(workdir))
            own = direct(model, source, options)
            same = service == own
            mismatches += not same
            text = "".join(segment[2] for segment in service).strip()
            print(
                f"{'identical' if same else 'DIFFERENT'}  {source.name}  {options or 'defaults'}: {text}"
            )
            if not same:
                print(f"  service: {service}\n  direct:  {own}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
