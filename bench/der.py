"""Diarization error rate (DER), as NIST's md-eval and pyannote.metrics define it.

Both the reference and the hypothesis are turns (start_s, end_s, speaker), and may overlap (two
people at once). Time is cut into frames of `step` (10 ms); a turn covers the frames from
round(start / step) to round(end / step). Frames within `collar` seconds of a reference turn's
start or end (on either side) are not scored: a reference is not that exact. pyannote's `collar`
is the whole width, so collar=0.25 here is pyannote's DiarizationErrorRate(collar=0.5).

Hypothesis speakers are mapped one-to-one onto reference speakers so that the time they share
(over scored frames) is largest (the Hungarian algorithm); a speaker on either side may be left
unmapped. Then, over the scored frames, with R reference speakers and H hypothesis speakers
speaking in a frame, C of them pairs the mapping joins:

- total = sum of R (overlapped speech counts once per speaker)
- missed = sum of max(0, R - H) (one hypothesis speaker where two speak misses one)
- false alarm = sum of max(0, H - R)
- confusion = sum of min(R, H) - C

each in seconds (frames x step); DER = (missed + false alarm + confusion) / total.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

STEP = 0.01
COLLAR = 0.25

Turns = Sequence[tuple[float, float, Hashable]]
Activity = np.ndarray[Any, np.dtype[np.bool_]]


@dataclass(frozen=True)
class DiarizationError:
    """The components of the error, in seconds of scored speech, and the mapping used."""

    missed: float
    false_alarm: float
    confusion: float
    total: float
    mapping: dict[Hashable, Hashable]  # hypothesis speaker -> reference speaker

    @property
    def rate(self) -> float:
        """DER: the errors over the reference's speech (0 when both are empty)."""
        errors = self.missed + self.false_alarm + self.confusion
        if self.total == 0:
            return 0.0 if errors == 0 else float("inf")
        return errors / self.total


def der(
    reference: Turns, hypothesis: Turns, collar: float = COLLAR, step: float = STEP
) -> DiarizationError:
    """The diarization error of `hypothesis` against `reference` (see the module's docstring)."""
    frames = _frame(max((end for _, end, _ in [*reference, *hypothesis]), default=0.0), step) + 1
    ref_speakers, ref = _activity(reference, frames, step)
    hyp_speakers, hyp = _activity(hypothesis, frames, step)
    scored = np.ones(frames, bool)
    for start, end, _ in reference:
        for boundary in (start, end):
            scored[_frame(boundary - collar, step) : _frame(boundary + collar, step)] = False
    ref, hyp = ref[:, scored], hyp[:, scored]

    # Frames each (reference, hypothesis) pair shares; the assignment maximises the sum.
    shared = ref.astype(np.int64) @ hyp.T.astype(np.int64)
    rows, columns = linear_sum_assignment(shared, maximize=True)
    pairs = [(r, c) for r, c in zip(rows.tolist(), columns.tolist(), strict=True) if shared[r, c]]

    speaking_ref = ref.sum(axis=0)
    speaking_hyp = hyp.sum(axis=0)
    correct = sum(int(shared[r, c]) for r, c in pairs)
    return DiarizationError(
        missed=float(np.maximum(speaking_ref - speaking_hyp, 0).sum()) * step,
        false_alarm=float(np.maximum(speaking_hyp - speaking_ref, 0).sum()) * step,
        confusion=(float(np.minimum(speaking_ref, speaking_hyp).sum()) - correct) * step,
        total=float(speaking_ref.sum()) * step,
        mapping={hyp_speakers[c]: ref_speakers[r] for r, c in pairs},
    )


def _frame(seconds: float, step: float) -> int:
    return max(0, round(seconds / step))


def _activity(turns: Turns, frames: int, step: float) -> tuple[list[Hashable], Activity]:
    """The speakers (in order of appearance) and a speakers x frames mask of who speaks when;
    a speaker's own overlapping turns count once."""
    speakers = list(dict.fromkeys(speaker for _, _, speaker in turns))
    index = {speaker: i for i, speaker in enumerate(speakers)}
    activity = np.zeros((len(speakers), frames), bool)
    for start, end, speaker in turns:
        activity[index[speaker], _frame(start, step) : _frame(end, step)] = True
    return speakers, activity
