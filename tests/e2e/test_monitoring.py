"""The Grafana dashboard and the Prometheus alert rules under deploy/monitoring name only metrics that the
running service's GET /metrics exposes, and every alert points at a runbook that exists."""

from __future__ import annotations

import json
import os
import re

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from shared.config import PROJECT_ROOT, Settings

pytestmark = pytest.mark.e2e

MONITORING = os.path.join(PROJECT_ROOT, "deploy", "monitoring")
METRIC = re.compile(r"\binference_[a-z0-9_]+\b")


def dashboard_exprs() -> list[str]:
    with open(os.path.join(MONITORING, "grafana-dashboard.json")) as f:
        dashboard = json.load(f)
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def alert_rules() -> list[dict]:
    with open(os.path.join(MONITORING, "alerts.yaml")) as f:
        return [rule for group in yaml.safe_load(f)["groups"] for rule in group["rules"]]


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


def test_alerts_cover_queue_age_5xx_no_workers_and_webhook_failures():
    exprs = " ".join(rule["expr"] for rule in alert_rules())
    for metric in (
        "inference_queue_oldest_job_age_seconds",
        'inference_http_requests_total{status=~"5.."}',
        "max(inference_workers) == 0",
        'up{job="inference-api"} == 0',
        'absent(up{job="inference-api"})',
        "inference_microbatches_total",
        "inference_webhook_given_up_total",
    ):
        assert metric in exprs


def test_alerts_name_the_default_queues_and_link_runbooks_that_exist():
    defaults = Settings.from_env({})
    with open(os.path.join(PROJECT_ROOT, "docs", "operations.md")) as f:
        anchors = {
            re.sub(r"[^a-z0-9 -]", "", h.lower()).strip().replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", f.read(), flags=re.M)
        }
    for rule in alert_rules():
        for queue in re.findall(r'queue="([^"]+)"', rule["expr"]):
            assert queue in (defaults.queue_name, defaults.bulk_queue_name)
        assert rule["labels"]["severity"] in ("page", "ticket")
        (anchor,) = re.findall(r"docs/operations\.md#([a-z0-9-]+)", rule["annotations"]["description"])
        assert anchor in anchors, f"{rule['alert']} links a runbook that docs/operations.md lacks: #{anchor}"
