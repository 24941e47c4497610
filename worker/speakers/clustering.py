"""Voice prints into speakers: average-linkage clustering by cosine distance (SciPy), within the
job's speaker count, then every print given to the nearest speaker's centre."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from whisper_transcriber.worker.speakers.embedder import Features

# Two groups of voice prints whose average cosine distance is above this are two people. Chosen
# on the benchmark's conversations (docs/benchmarks.md, "Speakers"): 0.4 to 0.6 gave the same
# speakers there; one voice stays one speaker well above 0.5.
DISTANCE_THRESHOLD = 0.5
# Linkage holds n²/2 distances: 2,000 chunks are 16 MB (about 27 minutes of speech). A longer
# file is clustered on an even sample of that many, and every chunk then joins the nearest centre.
MAX_CLUSTERED = 2000

Labels = np.ndarray[Any, np.dtype[np.intp]]


@dataclass(frozen=True)
class SpeakerCount:
    """What the job says about how many people speak: an exact number, or bounds, or nothing."""

    exact: int | None = None
    minimum: int | None = None
    maximum: int | None = None


def cluster(prints: Features, count: SpeakerCount) -> tuple[Labels, Features]:
    """A speaker (0..k-1) per print, and the k speakers' unit-length centres."""
    if prints.shape[0] == 0:
        return np.zeros(0, np.intp), np.zeros((0, prints.shape[1]), np.float32)
    if prints.shape[0] == 1:
        return np.zeros(1, np.intp), unit(prints.copy())
    from scipy.cluster.hierarchy import fcluster, linkage

    sample = prints
    if prints.shape[0] > MAX_CLUSTERED:
        sample = prints[np.linspace(0, prints.shape[0] - 1, MAX_CLUSTERED).astype(np.intp)]
    tree = linkage(sample.astype(np.float64), method="average", metric="cosine")
    if count.exact is not None:
        groups = fcluster(tree, count.exact, criterion="maxclust")
    else:
        groups = fcluster(tree, DISTANCE_THRESHOLD, criterion="distance")
        found = int(groups.max())
        if count.minimum is not None and found < count.minimum:
            groups = fcluster(tree, count.minimum, criterion="maxclust")
        elif count.maximum is not None and found > count.maximum:
            groups = fcluster(tree, count.maximum, criterion="maxclust")
    centres = unit(np.stack([sample[groups == g].mean(axis=0) for g in np.unique(groups)]))
    return nearest(prints, centres), centres


def nearest(prints: Features, centres: Features) -> Labels:
    """The centre each print is closest to (all unit length: the largest dot product)."""
    labels: Labels = np.argmax(prints @ centres.T, axis=1).astype(np.intp)
    return labels


def unit(vectors: Features) -> Features:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: Features = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit
