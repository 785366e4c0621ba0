"""The dashboard and the alert rules read the service-wide metrics once, whatever the number of API pods.

Every API pod's GET /metrics reads those from the same Redis and exports the same values, so a `sum` over
pods would show N times the truth: every expression must aggregate them with max (or min), directly or
around rate()/increase(). The per-pod metrics (inference_http_*, inference_redis_up) are exempt.
"""

from __future__ import annotations

import os
import re

import pytest
import yaml

from api.metrics import ServiceCollector
from api.queue_metrics import QueueCollector
from shared.config import PROJECT_ROOT
from tests.e2e.test_monitoring import alert_rules, dashboard_exprs
from tests.unit.test_k8s import by_kind, env_file

PER_POD = {"inference_redis_up"}
RANGE_FUNCTIONS = {"rate", "increase", "irate", "delta"}
AGGREGATIONS = {"sum", "max", "min", "avg", "count"}
_GROUPING = re.compile(r"\b(sum|max|min|avg|count)\s+(?:by|without)\s*\([^)]*\)\s*\(")


def redis_sourced(connection) -> set[str]:
    """Sample names of the metrics GET /metrics reads from Redis (per family: _total, _bucket, _sum, _count)."""
    names = set()
    for collector in (ServiceCollector(connection), QueueCollector(connection)):
        for family in collector.collect():
            if family.name in PER_POD:
                continue
            suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}.get(family.type, ("",))
            names |= {family.name + s for s in suffixes}
    return names


def enclosing_aggregation(expr: str, at: int) -> str | None:
    """The aggregation operator applied to the metric at `at`, looking through range functions; None if none."""
    text = _GROUPING.sub(lambda m: m.group(1) + "(", expr[:at])
    stack: list[str] = []
    for m in re.finditer(r"([a-z_]*)\s*\(|\)", text):
        if m.group(0) == ")":
            stack.pop()
        else:
            stack.append(m.group(1))
    for function in reversed(stack):
        if function in AGGREGATIONS:
            return function
        if function not in RANGE_FUNCTIONS:
            return None
    return None


@pytest.fixture
def sourced(redis_db) -> set[str]:
    names = redis_sourced(redis_db)
    assert {
        "inference_queued_jobs",
        "inference_workers",
        "inference_jobs_total",
        "inference_bulk_rows_pending",
    } <= names
    return names


@pytest.mark.parametrize("where", ["dashboard", "alerts"])
def test_service_wide_metrics_are_aggregated_with_max_never_summed_over_pods(sourced, where):
    exprs = dashboard_exprs() if where == "dashboard" else [r["expr"] for r in alert_rules()]
    summed = []
    for expr in exprs:
        for m in re.finditer(r"\binference_[a-z0-9_]+\b", expr):
            if m.group(0) in sourced and enclosing_aggregation(expr, m.start()) not in ("max", "min"):
                summed.append(f"{m.group(0)} in {expr!r}")
    assert summed == []


def test_the_check_sees_through_range_functions_and_groupings():
    expr = "sum by (status) (rate(inference_jobs_total[5m]))"
    assert enclosing_aggregation(expr, expr.index("inference")) == "sum"
    expr = "histogram_quantile(0.5, max by (le) (rate(x_bucket[5m])))"
    assert enclosing_aggregation(expr, expr.index("x_bucket")) == "max"
    assert enclosing_aggregation("inference_workers", 0) is None


def test_every_way_of_scraping_names_the_job_the_alerts_expect_and_sends_the_metrics_token():
    with open(os.path.join(PROJECT_ROOT, "deploy", "monitoring", "prometheus.yml")) as f:
        (job,) = yaml.safe_load(f)["scrape_configs"]
    expected = {j for r in alert_rules() for j in re.findall(r'up\{job="([^"]+)"\}', r["expr"])}
    assert expected == {job["job_name"]} and job["authorization"]["type"] == "Bearer"
    monitor = by_kind("ServiceMonitor")["api"]["spec"]
    service = by_kind("Service")["api"]["metadata"]["labels"]
    assert service[monitor["jobLabel"]] == job["job_name"]
    (endpoint,) = monitor["endpoints"]
    assert endpoint["authorization"]["credentials"] == {"name": "inference-secrets", "key": "METRICS_TOKEN"}
    assert "METRICS_TOKEN" in env_file("secrets.env.example")
    with open(os.path.join(PROJECT_ROOT, "docker-compose.yml")) as f:
        api_env = yaml.safe_load(f)["services"]["api"]["environment"]
    assert api_env["METRICS_TOKEN"].startswith("${METRICS_TOKEN:?")
    pod = by_kind("Deployment")["api"]["spec"]["template"]["metadata"]
    assert not any(k.startswith("prometheus.io/") for k in pod.get("annotations", {}))  # they cannot send a token
