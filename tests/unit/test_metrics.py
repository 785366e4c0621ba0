"""Histograms kept in a Redis hash: per-bucket increments from the worker, cumulative buckets for Prometheus."""

from __future__ import annotations

from shared.worker_metrics import Histogram

H = Histogram("h", "test", (1, 5, 10))


def test_increments_touch_one_bucket_per_value_plus_sum_and_count():
    assert H.increments([0.5, 1, 3, 50]) == {
        "h:le:1.0": 2,
        "h:le:5.0": 1,
        "h:le:+Inf": 1,
        "h:count": 4,
        "h:sum": 54.5,
    }
    assert H.increments([]) == {}


def test_cumulative_buckets_add_up_and_end_with_inf():
    stored = {k: float(v) for k, v in H.increments([0.5, 1, 3, 50]).items()}
    buckets, total = H.cumulative(stored)
    assert buckets == [("1.0", 2), ("5.0", 3), ("10.0", 3), ("+Inf", 4)]
    assert total == 54.5
    assert H.cumulative({}) == ([("1.0", 0), ("5.0", 0), ("10.0", 0), ("+Inf", 0)], 0.0)
