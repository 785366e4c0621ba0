"""The Prometheus alert rules under deploy/monitoring, read as files: what they cover, the queues they
name and the runbooks they link (that the running service exposes their metrics: tests/e2e/test_monitoring.py)."""

from __future__ import annotations

import json
import os
import re

import yaml

from shared.config import PROJECT_ROOT, Settings

MONITORING = os.path.join(PROJECT_ROOT, "deploy", "monitoring")
METRIC = re.compile(r"\binference_[a-z0-9_]+\b")


def dashboard_exprs() -> list[str]:
    with open(os.path.join(MONITORING, "grafana-dashboard.json")) as f:
        dashboard = json.load(f)
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def alert_rules() -> list[dict]:
    with open(os.path.join(MONITORING, "alerts.yaml")) as f:
        return [rule for group in yaml.safe_load(f)["groups"] for rule in group["rules"]]


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
