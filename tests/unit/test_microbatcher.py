"""The collect state machine, driven by an in-memory source and a fake clock."""

from __future__ import annotations

import pytest

from worker.microbatcher import Segment, collect, validate_knobs


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class ListSource:
    """Items arrive at given fake times; take() advances the clock while it 'waits'."""

    def __init__(self, clock: FakeClock, arrivals: list[tuple[float, int]]) -> None:
        self.clock = clock
        self.arrivals = sorted(arrivals)  # (time, rows)
        self.calls: list[tuple[int, float]] = []

    def take(self, max_rows: int, timeout: float) -> list[Segment]:
        self.calls.append((max_rows, timeout))
        ready = [a for a in self.arrivals if a[0] <= self.clock.now]
        if not ready and self.arrivals and self.arrivals[0][0] <= self.clock.now + timeout:
            self.clock.now = self.arrivals[0][0]
            ready = [a for a in self.arrivals if a[0] <= self.clock.now]
        elif not ready:
            self.clock.now += timeout
            return []
        taken, rows = [], 0
        for arrival in ready:
            if rows + arrival[1] > max_rows:
                break
            taken.append(arrival)
            rows += arrival[1]
        for arrival in taken:
            self.arrivals.remove(arrival)
        return [Segment(claim=t, start=0, stop=t[1]) for t in taken]


def test_idle_source_returns_an_empty_batch_after_the_idle_timeout():
    clock = FakeClock()
    source = ListSource(clock, [])
    assert collect(source, 8, 0.0, idle_timeout_s=1.0, clock=clock) == []
    assert clock.now == 101.0


def test_zero_delay_answers_a_lone_item_at_once():
    clock = FakeClock()
    source = ListSource(clock, [(100.0, 1), (100.5, 1)])
    batch = collect(source, 8, 0.0, 1.0, clock=clock)
    assert [s.rows for s in batch] == [1]
    assert clock.now == 100.0  # never waited for company
    assert len(source.calls) == 1


def test_zero_delay_takes_everything_already_queued():
    clock = FakeClock()
    source = ListSource(clock, [(99.0, 1)] * 5)
    assert sum(s.rows for s in collect(source, 8, 0.0, 1.0, clock=clock)) == 5


def test_window_opens_at_the_first_item_and_closes_at_the_deadline():
    clock = FakeClock()
    source = ListSource(clock, [(100.5, 1), (100.6, 1), (100.65, 1), (100.8, 1)])
    batch = collect(source, 8, max_delay_s=0.2, idle_timeout_s=1.0, clock=clock)
    # first item at 100.5 opens a window until 100.7: the item at 100.8 misses it
    assert len(batch) == 3
    assert clock.now == pytest.approx(100.7)


def test_a_full_batch_is_released_before_the_deadline_even_with_a_huge_delay():
    clock = FakeClock()
    source = ListSource(clock, [(100.0, 1)] * 4 + [(100.1, 1)] * 4)
    batch = collect(source, 8, max_delay_s=3600.0, idle_timeout_s=1.0, clock=clock)
    assert sum(s.rows for s in batch) == 8
    assert clock.now == pytest.approx(100.1)


def test_batch_size_one_never_waits():
    clock = FakeClock()
    source = ListSource(clock, [(100.0, 1), (100.0, 1)])
    batch = collect(source, 1, max_delay_s=3600.0, idle_timeout_s=1.0, clock=clock)
    assert len(batch) == 1 and clock.now == 100.0


@pytest.mark.parametrize(("size", "delay", "words"), [(0, 0.0, "max_rows"), (4, -1.0, "max_delay_s")])
def test_bad_knobs_are_rejected_with_the_rule(size, delay, words):
    with pytest.raises(ValueError, match=words):
        validate_knobs(size, delay)


def test_a_segment_that_must_run_alone_is_a_batch_at_once_even_with_a_huge_delay():
    clock = FakeClock()

    class AloneSource(ListSource):
        def take(self, max_rows, timeout):
            return [Segment(claim=s.claim, start=s.start, stop=s.stop, rerun=True) for s in super().take(1, timeout)]

    source = AloneSource(clock, [(100.0, 1), (100.0, 1)])
    batch = collect(source, 8, max_delay_s=3600.0, idle_timeout_s=1.0, clock=clock)
    assert len(batch) == 1 and batch[0].rerun and clock.now == 100.0
    assert len(source.calls) == 1  # no filling
