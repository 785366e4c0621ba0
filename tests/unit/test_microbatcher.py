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

    def take(self, max_rows: int, timeout: float, bulk: bool | None = None) -> list[Segment]:
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
        def take(self, max_rows, timeout, bulk=None):
            return [Segment(claim=s.claim, start=s.start, stop=s.stop, rerun=True) for s in super().take(1, timeout)]

    source = AloneSource(clock, [(100.0, 1), (100.0, 1)])
    batch = collect(source, 8, max_delay_s=3600.0, idle_timeout_s=1.0, clock=clock)
    assert len(batch) == 1 and batch[0].rerun and clock.now == 100.0
    assert len(source.calls) == 1  # no filling


class ScriptedWindow:
    """A window that waits `wait` while fewer than `until_rows` rows are in hand, and records what it saw."""

    def __init__(self, wait: float, until_rows: int) -> None:
        self.wait, self.until_rows = wait, until_rows
        self.asked: list[tuple[int, float]] = []
        self.arrivals: list[int] = []

    def wait_s(self, rows_in_hand, waited_s, now):
        self.asked.append((rows_in_hand, waited_s))
        return self.wait if rows_in_hand < self.until_rows else 0.0

    def observe_arrivals(self, rows, now):
        self.arrivals.append(rows)


def test_the_window_keeps_filling_while_it_says_waiting_pays():
    clock = FakeClock()
    source = ListSource(clock, [(100.0, 1), (100.001, 1), (100.002, 1), (100.003, 1)])
    window = ScriptedWindow(wait=0.005, until_rows=3)
    batch = collect(source, 8, 0.0, 1.0, clock=clock, window=window)
    assert sum(s.rows for s in batch) == 3
    assert window.asked == [(1, 0.0), (2, pytest.approx(0.001)), (3, pytest.approx(0.002))]
    assert window.arrivals == [3]  # told once, after deciding: the micro-batch's own rows never argue for waiting


def test_a_wait_in_which_nothing_came_ends_the_window():
    clock = FakeClock()
    source = ListSource(clock, [(100.0, 1), (100.5, 1)])
    window = ScriptedWindow(wait=0.005, until_rows=8)
    batch = collect(source, 8, 0.0, 1.0, clock=clock, window=window)
    assert len(batch) == 1 and clock.now == pytest.approx(100.005)
    assert len(window.asked) == 1


def test_a_window_that_says_no_adds_no_latency():
    clock = FakeClock()
    source = ListSource(clock, [(100.0, 1), (100.001, 1)])
    window = ScriptedWindow(wait=0.005, until_rows=1)
    batch = collect(source, 8, 0.0, 1.0, clock=clock, window=window)
    assert len(batch) == 1 and clock.now == 100.0 and len(source.calls) == 1


def test_the_window_is_not_asked_before_the_fixed_delay_has_passed():
    clock = FakeClock()
    source = ListSource(clock, [(100.0, 1), (100.05, 1), (100.104, 1)])
    window = ScriptedWindow(wait=0.005, until_rows=8)
    batch = collect(source, 8, max_delay_s=0.1, idle_timeout_s=1.0, clock=clock, window=window)
    assert len(batch) == 3
    assert window.asked[0] == (2, pytest.approx(0.1))


def test_a_rerun_segment_runs_at_once_whatever_the_window_says():
    clock = FakeClock()

    class AloneSource(ListSource):
        def take(self, max_rows, timeout, bulk=None):
            return [Segment(claim=s.claim, start=s.start, stop=s.stop, rerun=True) for s in super().take(1, timeout)]

    window = ScriptedWindow(wait=0.005, until_rows=8)
    batch = collect(AloneSource(clock, [(100.0, 1), (100.001, 1)]), 8, 0.0, 1.0, clock=clock, window=window)
    assert len(batch) == 1 and window.asked == [] and clock.now == 100.0


def test_rows_of_a_claim_already_in_hand_are_not_counted_as_arrivals():
    clock = FakeClock()

    class CarrySource(ListSource):
        def take(self, max_rows, timeout, bulk=None):
            return [Segment(claim="big job", start=256, stop=300)]

    window = ScriptedWindow(wait=0.0, until_rows=0)
    collect(CarrySource(clock, []), 256, 0.0, 1.0, clock=clock, window=window)
    assert window.arrivals == [0]


def test_an_adaptive_window_in_front_of_a_real_window_object_never_delays_a_lone_row():
    from worker.adaptive_window import AdaptiveWindow

    clock = FakeClock()
    window = AdaptiveWindow(cap_s=1.0)
    window.observe_model_call(1, 0.05)  # a very expensive fixed cost
    source = ListSource(clock, [(100.0, 1), (100.001, 1)])
    batch = collect(source, 8, 0.0, 1.0, clock=clock, window=window)
    assert len(batch) == 1 and clock.now == 100.0


def test_under_a_fast_stream_the_adaptive_window_grows_the_micro_batch_until_it_stops_paying():
    from worker.adaptive_window import AdaptiveWindow

    clock = FakeClock()
    window = AdaptiveWindow(cap_s=1.0)
    for rows in (1, 8, 64):
        window.observe_model_call(rows, 0.005 + 0.00001 * rows)  # fixed cost 5 ms
    for i in range(2000):  # 4,000 rows/s over the last half second: λ·a = 20
        window.observe_arrivals(1, 99.5 + i / 4000)
    source = ListSource(clock, [(100.0 + i / 4000, 1) for i in range(20)])
    batch = collect(source, 64, 0.0, 1.0, clock=clock, window=window)
    assert len(batch) == 4  # n·(n+1) < 20 up to n = 4
    assert clock.now == pytest.approx(100.00075)
