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


def test_ended_jobs_are_counted_by_key_name_and_render_with_a_tenant_label():
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from api.metrics import _tenant_families
    from shared.schema import JobStatus
    from worker.claim import Claim
    from worker.outcomes import PublishedResult, Tally

    tally = Tally("rq:worker:w")
    claims = [
        Claim("a1", 0, "a1:t", 3, tenant="team-a", waited_s=0.02),
        Claim("a2", 0, "a2:t", 1, tenant="team-a", waited_s=2.0),
        Claim("n1", 0, "n1:t", 2, waited_s=None),  # anonymous traffic
    ]
    tally.add([PublishedResult(c, JobStatus.FINISHED, 0.1) for c in claims], None, 0)
    assert tally.metrics["inference_tenant_jobs_total:team-a"] == 2
    assert tally.metrics["inference_tenant_rows_total:team-a"] == 4
    assert tally.metrics["inference_tenant_rows_total:-"] == 2
    assert tally.metrics["inference_tenant_wait_seconds@team-a:count"] == 2

    class Families:
        def collect(self):
            return _tenant_families(dict(tally.metrics))

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Families())
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(generate_latest(registry).decode())
        for s in f.samples
    }
    assert samples[("inference_tenant_jobs_total", (("tenant", "team-a"),))] == 2
    assert samples[("inference_tenant_rows_total", (("tenant", "-"),))] == 2
    assert samples[("inference_tenant_wait_seconds_bucket", (("le", "0.025"), ("tenant", "team-a")))] == 1
    assert samples[("inference_tenant_wait_seconds_count", (("tenant", "-"),))] == 0
