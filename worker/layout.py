"""How many worker processes, and how many threads each, when the settings leave it open.

Measured (bench/cpu_layout.py, docs/benchmarks.md): on a CPU, one single-threaded model process per
core beats one process using every core, because CTranslate2's decoding loop does not scale across
threads for small models while separate processes do. On a GPU one process drives the device.
"""

from __future__ import annotations

from dataclasses import dataclass

CUDA_WORKERS = 1
CUDA_THREADS_PER_WORKER = 4  # CPU threads for the work around the GPU (feature extraction)


@dataclass(frozen=True)
class Layout:
    workers: int
    threads_per_worker: int


def default_layout(
    device: str, cores: int, workers: int | None = None, threads: int | None = None
) -> Layout:
    """Fill in what the settings left unset from the measured rule."""
    if device == "cuda":
        return Layout(workers or CUDA_WORKERS, threads or CUDA_THREADS_PER_WORKER)
    if workers is None and threads is None:
        return Layout(max(cores, 1), 1)
    if workers is None:
        return Layout(max(cores // (threads or 1), 1), threads or 1)
    return Layout(workers, threads or max(cores // workers, 1))
