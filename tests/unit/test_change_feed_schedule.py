"""When the change feed looks (db/changes.py's ReadSchedule), with a clock of our own."""

from __future__ import annotations

import itertools
import math

from whisper_transcriber.db.changes import MIN_GAP_S, POLL_S, SETTLE_S, ReadSchedule

QUIET_S = 60.0


def test_without_news_it_polls_slowly_only_while_a_signal_is_heard() -> None:
    schedule = ReadSchedule(QUIET_S)
    assert schedule.reading(100.0) is False
    assert schedule.next_read(listening=True) == 100.0 + QUIET_S
    assert schedule.next_read(listening=False) == 100.0 + POLL_S


def test_a_poke_or_a_committed_signal_is_read_at_once() -> None:
    schedule = ReadSchedule(QUIET_S)
    schedule.reading(100.0)
    schedule.poked()
    assert schedule.next_read(listening=True) == -math.inf
    assert schedule.reading(100.01) is False  # nothing to wait for: it was committed
    schedule.signalled(100.02, early=False)  # PostgreSQL's NOTIFY comes after the commit
    assert schedule.next_read(listening=True) == -math.inf
    assert schedule.reading(100.02) is False


def test_an_early_signal_is_read_a_moment_later_behind_the_writers() -> None:
    schedule = ReadSchedule(QUIET_S)
    schedule.reading(100.0)
    schedule.signalled(101.0, early=True)  # a write to the SQLite file
    assert schedule.next_read(listening=True) == 101.0 + SETTLE_S
    assert schedule.reading(101.0 + SETTLE_S) is True  # waits for a commit under way
    assert schedule.next_read(listening=True) == 101.0 + SETTLE_S + QUIET_S


def test_a_stream_of_writes_is_read_a_few_times_a_second_not_never_nor_each_time() -> None:
    schedule = ReadSchedule(QUIET_S)
    schedule.reading(0.0)
    reads = []
    now = 10.0
    while now < 11.0:  # a write every millisecond for a second
        schedule.signalled(now, early=True)
        if schedule.next_read(listening=True) <= now:
            schedule.reading(now)
            reads.append(now)
        now = round(now + 0.001, 3)
    assert reads, "a stream of writes must not keep postponing the look"
    assert reads[0] == 10.0 + SETTLE_S
    gaps = [b - a for a, b in itertools.pairwise(reads)]
    assert min(gaps) >= MIN_GAP_S - 1e-9
    assert max(gaps) <= MIN_GAP_S + 0.002
