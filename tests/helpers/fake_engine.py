"""A stand-in for the faster-whisper engine that loads no model and does on demand what a test of
everything around the model needs: work a while, work until told to stop, hang, crash, fail.

A service runs it when its `engine` setting names FAKE_ENGINE (fake_engine_env() sets that and
puts the repository on PYTHONPATH, so that spawned worker processes import it too). A source file
whose content is a plan (written by `plan`) says what its job does; any other file, real audio
included, is "transcribed" at once into a fixed one-segment transcript that names it."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from tests.helpers.paths import REPOSITORY
from whisper_transcriber.db.transcript import Segment, Transcript, Word
from whisper_transcriber.db.values import JobOptions
from whisper_transcriber.worker.engine import Engine, ModelSpec
from whisper_transcriber.worker.media import MediaError

FAKE_ENGINE = "tests.helpers.fake_engine:FakeEngine"
PLAN_KEY = "fake_engine"
# How often a working job reports progress (and so may be stopped: a cancel, a lost lease).
TICK_S = 0.05
DURATION_S = 4.0
# A plan is a small JSON file; anything longer is a real recording.
PLAN_MAX_BYTES = 4096


def plan(
    path: Path,
    *,
    work_s: float | None = None,
    until: Path | None = None,
    hang: bool = False,
    crash: str | None = None,
    fail: str | None = None,
    bad_media: str | None = None,
    text: str | None = None,
) -> Path:
    """A source file whose job, run by the fake engine, does what the arguments say:
    work_s: works that long (reporting progress), then finishes;
    until: works (reporting progress) until that file exists, then finishes;
    hang: stops for good, reporting nothing (a stuck decoder; the heartbeat goes on);
    crash: "kill" (SIGKILL of the worker process) or "exit" (os._exit(1));
    fail: raises RuntimeError(fail), a failure the queue retries;
    bad_media: raises MediaError(bad_media), a failure for good;
    text: the transcript's text (else one that names the file)."""
    steps = {
        "work_s": work_s,
        "until": str(until) if until else None,
        "hang": hang or None,
        "crash": crash,
        "fail": fail,
        "bad_media": bad_media,
        "text": text,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({PLAN_KEY: {k: v for k, v in steps.items() if v is not None}}))
    return path


def fake_engine_env(env: dict[str, str]) -> dict[str, str]:
    """A service's environment, with its workers on the fake engine."""
    path = os.pathsep.join(filter(None, (str(REPOSITORY), env.get("PYTHONPATH"))))
    return {**env, "WHISPER_TRANSCRIBER_ENGINE": FAKE_ENGINE, "PYTHONPATH": path}


def in_process() -> Engine:
    """A fake engine for this process, typed as the engine the job runner takes."""
    return cast(Engine, FakeEngine(ModelSpec("fake"), "cpu", "int8"))


def _plan_of(path: str) -> dict[str, Any]:
    with open(path, "rb") as source:
        head = source.read(PLAN_MAX_BYTES + 1)
    if len(head) > PLAN_MAX_BYTES or not head.startswith(b"{"):
        return {}
    try:
        found = json.loads(head).get(PLAN_KEY, {})
    except (ValueError, AttributeError):
        return {}
    return found if isinstance(found, dict) else {}


class FakeEngine:
    """What the job runner and the worker use of worker/engine.py's Engine, without a model."""

    def __init__(
        self,
        spec: ModelSpec,
        device: str,
        compute_type: str,
        cpu_threads: int = 0,
        *,
        max_audio_duration_s: float | None = None,
    ) -> None:
        self.device = "cpu" if device == "auto" else device
        self.compute_type = "int8" if compute_type == "auto" else compute_type
        self.max_audio_duration_s = max_audio_duration_s

    def transcribe(
        self,
        path: str,
        options: JobOptions,
        on_progress: Callable[[float], None] | None = None,
        on_language: Callable[[str], None] | None = None,
    ) -> Transcript:
        steps = _plan_of(path)
        language = options.language or "en"
        if options.detect_only:
            return Transcript(language, 1.0, DURATION_S, ())
        if on_language is not None:
            on_language(language)
        if "crash" in steps:
            if steps["crash"] == "exit":
                os._exit(1)
            os.kill(os.getpid(), signal.SIGKILL)
        if "fail" in steps:
            raise RuntimeError(steps["fail"])
        if "bad_media" in steps:
            raise MediaError(steps["bad_media"])
        if steps.get("hang"):
            threading.Event().wait()  # for good: only a kill ends it
        if "work_s" in steps or "until" in steps:
            _work(steps, on_progress or (lambda _fraction: None))
        name = Path(os.path.realpath(path)).name  # the source's own name, not its descriptor's
        text = steps.get("text") or f"Fake transcript of {name}."
        words = None
        if options.word_timestamps:
            words = (Word(0.0, DURATION_S, f" {text}", 1.0),)
        segment = Segment(0, 0.0, DURATION_S, f" {text}", words=words)
        return Transcript(language, 1.0, DURATION_S, (segment,))


def _work(steps: dict[str, Any], on_progress: Callable[[float], None]) -> None:
    """Report progress every TICK_S until the work is done (its time is up, or its file exists);
    on_progress raises to stop it, as it does the real engine between segments."""
    started = time.monotonic()
    work_s = steps.get("work_s")
    until = Path(steps["until"]) if "until" in steps else None
    while True:
        elapsed = time.monotonic() - started
        if work_s is not None and elapsed >= work_s:
            return
        if until is not None and until.exists():
            return
        # Short of 1 until the end, whatever the length: the fraction only grows.
        fraction = elapsed / work_s if work_s else elapsed / (elapsed + 1.0)
        on_progress(min(max(fraction, 0.01), 0.99))
        time.sleep(TICK_S)
