"""The adaptive window's rule: wait only when recent arrivals and the model's fixed cost say it pays."""

from __future__ import annotations

import pytest

from worker.adaptive_window import AdaptiveWindow, CostFit, fit_cost

MS = 0.001


def window_with_cost(fixed_s: float, per_row_s: float, cap_s: float = 0.05) -> AdaptiveWindow:
    window = AdaptiveWindow(cap_s=cap_s)
    for rows in (1, 8, 64, 1, 8, 64):
        window.observe_model_call(rows, fixed_s + per_row_s * rows)
    return window


def arrivals(window: AdaptiveWindow, rows_per_s: float, until: float, seconds: float = 0.5) -> None:
    """One-row arrivals at a steady rate over the `seconds` before `until`."""
    count = int(rows_per_s * seconds)
    for i in range(count):
        window.observe_arrivals(1, until - seconds + i / rows_per_s)


def test_the_cost_fit_recovers_a_linear_cost_curve():
    fit = fit_cost([(1, 0.0021), (8, 0.0028), (64, 0.0084)])
    assert fit.fixed_s == pytest.approx(0.002, abs=1e-6) and fit.per_row_s == pytest.approx(0.0001, abs=1e-8)


def test_one_call_size_counts_as_fixed_cost_only_for_single_rows():
    assert fit_cost([(1, 0.003), (1, 0.005)]) == CostFit(0.004, 0.0)
    assert fit_cost([(10, 0.01)]) == CostFit(0.0, 0.001)
    assert fit_cost([]) is None


def test_noise_that_makes_bigger_calls_look_cheaper_gives_a_flat_cost():
    assert fit_cost([(1, 0.004), (8, 0.002)]) == CostFit(0.003, 0.0)


def test_a_lone_request_never_waits_whatever_the_model_costs():
    window = window_with_cost(fixed_s=20 * MS, per_row_s=0.0, cap_s=1.0)
    assert window.wait_s(rows_in_hand=1, waited_s=0.0, now=100.0) == 0.0


def test_a_request_after_a_quiet_spell_does_not_wait_for_traffic_that_has_stopped():
    window = window_with_cost(fixed_s=20 * MS, per_row_s=0.0, cap_s=1.0)
    arrivals(window, rows_per_s=5000, until=100.0)
    assert window.wait_s(1, 0.0, now=100.0) > 0
    assert window.wait_s(1, 0.0, now=101.0) == 0.0  # a second later the horizon holds nothing


def test_fast_arrivals_and_a_large_fixed_cost_open_the_window_for_about_two_gaps():
    window = window_with_cost(fixed_s=5 * MS, per_row_s=0.01 * MS)
    arrivals(window, rows_per_s=4000, until=100.0)  # λ·a = 20 > 1·2
    assert window.wait_s(1, 0.0, now=100.0) == pytest.approx(2 / 4000, rel=0.01)


def test_the_window_closes_once_enough_rows_are_in_hand():
    window = window_with_cost(fixed_s=5 * MS, per_row_s=0.01 * MS)
    arrivals(window, rows_per_s=4000, until=100.0)  # λ·a = 20: worth it while n·(n+1) < 20
    assert window.wait_s(3, 0.0, now=100.0) > 0
    assert window.wait_s(4, 0.0, now=100.0) == 0.0


def test_a_cheap_fixed_cost_never_opens_the_window():
    window = window_with_cost(fixed_s=0.2 * MS, per_row_s=0.05 * MS)
    arrivals(window, rows_per_s=4000, until=100.0)  # λ·a = 0.8
    assert window.wait_s(1, 0.0, now=100.0) == 0.0


def test_a_single_closed_loop_client_never_opens_the_window():
    # One client sends its next request only after the last answer, so it cannot arrive faster than one
    # fixed cost apart: λ·a ≤ 1 < 1·2.
    fixed = 2 * MS
    window = window_with_cost(fixed_s=fixed, per_row_s=0.0)
    arrivals(window, rows_per_s=1 / fixed, until=100.0)
    assert window.wait_s(1, 0.0, now=100.0) == 0.0


def test_the_total_wait_is_capped_by_the_fixed_cost_and_by_the_cap():
    window = window_with_cost(fixed_s=5 * MS, per_row_s=0.0, cap_s=1.0)
    arrivals(window, rows_per_s=2000, until=100.0)  # one gap 0.5 ms, two 1 ms
    assert window.wait_s(1, waited_s=4.5 * MS, now=100.0) == pytest.approx(0.5 * MS)
    assert window.wait_s(1, waited_s=5 * MS, now=100.0) == 0.0
    capped = window_with_cost(fixed_s=5 * MS, per_row_s=0.0, cap_s=0.2 * MS)
    arrivals(capped, rows_per_s=2000, until=100.0)
    assert capped.wait_s(1, 0.0, now=100.0) == pytest.approx(0.2 * MS)


def test_no_model_call_seen_yet_means_no_wait():
    window = AdaptiveWindow(cap_s=1.0)
    arrivals(window, rows_per_s=10_000, until=100.0)
    assert window.wait_s(1, 0.0, now=100.0) == 0.0


def test_the_rate_counts_only_the_horizon():
    window = AdaptiveWindow(cap_s=1.0, horizon_s=0.5)
    window.observe_arrivals(100, 99.0)
    window.observe_arrivals(50, 99.8)
    assert window.rate(100.0) == pytest.approx(100.0)


def test_bad_arguments_are_rejected_with_the_rule():
    with pytest.raises(ValueError, match="cap_s must be ≥ 0"):
        AdaptiveWindow(cap_s=-1.0)
