"""bench/der.py on cases worked out by hand (times chosen on the 10 ms grid)."""

from __future__ import annotations

import pytest

from bench.der import DiarizationError, der

TWO = [(0.0, 10.0, "A"), (10.0, 20.0, "B")]


def seconds(error: DiarizationError) -> tuple[float, float, float, float]:
    """The four components, rounded off the float noise of frames x 0.01."""
    missed, false_alarm, confusion, total = (
        round(value, 6) for value in (error.missed, error.false_alarm, error.confusion, error.total)
    )
    return missed, false_alarm, confusion, total


def test_a_perfect_hypothesis_has_no_error_and_the_collars_are_not_scored() -> None:
    error = der(TWO, [(0.0, 10.0, "x"), (10.0, 20.0, "y")])
    # Collars of 0.25 s around 0, 10 (twice: A's end, B's start) and 20: 1 s in all unscored.
    assert seconds(error) == (0.0, 0.0, 0.0, 19.0)
    assert error.rate == 0.0
    assert error.mapping == {"x": "A", "y": "B"}


def test_labels_are_mapped_whatever_their_names() -> None:
    error = der(TWO, [(0.0, 10.0, "B"), (10.0, 20.0, "A")], collar=0.0)
    assert seconds(error) == (0.0, 0.0, 0.0, 20.0)
    assert error.mapping == {"B": "A", "A": "B"}


def test_speech_the_hypothesis_leaves_out_is_missed() -> None:
    error = der([(0.0, 10.0, "A")], [(0.0, 5.0, "x")], collar=0.0)
    assert seconds(error) == (5.0, 0.0, 0.0, 10.0)
    assert error.rate == pytest.approx(0.5)


def test_speech_where_nobody_speaks_is_a_false_alarm() -> None:
    error = der([(0.0, 10.0, "A")], [(0.0, 10.0, "x"), (12.0, 14.0, "y")], collar=0.0)
    assert seconds(error) == (0.0, 2.0, 0.0, 10.0)
    assert error.rate == pytest.approx(0.2)


def test_the_wrong_speaker_is_confusion() -> None:
    # x covers A (mapped) and half of B; nothing covers the rest of B.
    error = der(TWO, [(0.0, 15.0, "x")], collar=0.0)
    assert seconds(error) == (5.0, 0.0, 5.0, 20.0)
    assert error.rate == pytest.approx(0.5)


def test_one_reference_speaker_split_in_two_confuses_the_smaller_part() -> None:
    error = der([(0.0, 10.0, "A")], [(0.0, 6.0, "x"), (6.0, 10.0, "y")], collar=0.0)
    assert seconds(error) == (0.0, 0.0, 4.0, 10.0)
    assert error.mapping == {"x": "A"}


def test_errors_inside_the_collar_are_forgiven() -> None:
    hypothesis = [(0.2, 10.1, "x")]
    assert seconds(der([(0.0, 10.0, "A")], hypothesis)) == (0.0, 0.0, 0.0, 9.5)
    assert seconds(der([(0.0, 10.0, "A")], hypothesis, collar=0.0)) == (0.2, 0.1, 0.0, 10.0)
    # Past the collar they count: 0.5 s late is 0.25 s missed outside it.
    assert seconds(der([(0.0, 10.0, "A")], [(0.5, 10.0, "x")])) == (0.25, 0.0, 0.0, 9.5)


def test_overlapped_speech_counts_once_per_speaker() -> None:
    reference = [(0.0, 10.0, "A"), (5.0, 15.0, "B")]
    # One hypothesis speaker at a time: the overlap (5 s) has one of its two speakers missed.
    error = der(reference, [(0.0, 10.0, "x"), (10.0, 15.0, "y")], collar=0.0)
    assert seconds(error) == (5.0, 0.0, 0.0, 20.0)
    assert error.rate == pytest.approx(0.25)
    # Both found in the overlap: no error.
    both = der(reference, [(0.0, 10.0, "x"), (5.0, 15.0, "y")], collar=0.0)
    assert seconds(both) == (0.0, 0.0, 0.0, 20.0)


def test_two_found_where_one_speaks_is_a_false_alarm() -> None:
    error = der([(0.0, 10.0, "A")], [(0.0, 10.0, "x"), (2.0, 4.0, "y")], collar=0.0)
    assert seconds(error) == (0.0, 2.0, 0.0, 10.0)


def test_a_speaker_overlapping_itself_counts_once() -> None:
    twice = der([(0.0, 10.0, "A"), (2.0, 4.0, "A")], [(0.0, 6.0, "x"), (5.0, 10.0, "x")], 0.0)
    assert seconds(twice) == (0.0, 0.0, 0.0, 10.0)


def test_times_off_the_grid_round_to_the_nearest_frame() -> None:
    error = der([(1.004, 2.996, "A")], [(1.0, 3.0, "x")], collar=0.0)
    assert seconds(error) == (0.0, 0.0, 0.0, 2.0)


def test_nothing_said_and_nothing_found_is_no_error() -> None:
    error = der([], [], collar=0.0)
    assert seconds(error) == (0.0, 0.0, 0.0, 0.0)
    assert error.rate == 0.0
    assert der([], [(0.0, 1.0, "x")], collar=0.0).rate == float("inf")
