"""The Grafana dashboard and the Prometheus alert rules under deploy/monitoring name only metrics that the
running service's GET /metrics exposes (the rules on their own: tests/unit/test_alert_rules.py)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.test_alert_rules import METRIC, alert_rules, dashboard_exprs

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def exposed(service, digits) -> set[str]:
    """Sample names on /metrics after one prediction (so every family has samples)."""
    x, _ = digits
    assert service.predict(x[:2].tolist()).json()["status"] == "finished"
    text = service.http.get("/metrics").text
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def test_every_metric_the_dashboard_plots_is_exposed(exposed):
    named = {m for expr in dashboard_exprs() for m in METRIC.findall(expr)}
    assert len(named) >= 15 and named - exposed == set()


def test_every_metric_the_alerts_use_is_exposed(exposed):
    named = {m for rule in alert_rules() for m in METRIC.findall(rule["expr"])}
    assert named - exposed == set()
