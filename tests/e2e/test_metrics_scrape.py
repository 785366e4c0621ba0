"""Monitoring with API keys on: Prometheus scrapes a keyed stack the way deploy/monitoring/prometheus.yml
says (METRICS_TOKEN as a bearer token), the token opens nothing else, and the alert rules evaluated against
the live scrape (tests/promql.py) fire when they should: the target rule when the scrape is refused, the
no-live-workers rule once the only worker is killed with work queued."""

from __future__ import annotations

import os
import signal

import pytest
import yaml

from shared.config import PROJECT_ROOT
from tests import promql
from tests.e2e.test_monitoring import alert_rules
from tests.support import Service, wait_until

pytestmark = pytest.mark.e2e

API_KEY, TOKEN = "api-key-0001", "scrape-token-0001"
ROW = [0.0] * 64


def documented_job() -> dict:
    with open(os.path.join(PROJECT_ROOT, "deploy", "monitoring", "prometheus.yml")) as f:
        (job,) = yaml.safe_load(f)["scrape_configs"]
    return job


def rule(name: str) -> str:
    (expr,) = [r["expr"] for r in alert_rules() if r["alert"] == name]
    return expr


@pytest.fixture(scope="module")
def keyed(make_module_service) -> Service:
    # HEARTBEAT_S 1: a killed worker's heartbeat lapses after 3 s.
    return make_module_service(workers=1, api_keys=API_KEY, metrics_token=TOKEN, heartbeat_s=1.0)


def scrape(service: Service, credentials: str | None) -> dict[str, list[promql.Sample]]:
    """One scrape as prometheus.yml configures it, with `credentials` in its credentials file."""
    job = documented_job()
    auth = job["authorization"]
    headers = {"Authorization": f"{auth['type']} {credentials}"} if credentials else {}
    response = service.http.get(job["metrics_path"], headers=headers)
    return promql.samples(response.text, job["job_name"], response.status_code)


def test_the_documented_scrape_reads_a_keyed_stack_with_the_metrics_token(keyed):
    job = documented_job()
    assert job["job_name"] == "inference-api" and job["authorization"]["credentials_file"]
    scraped = scrape(keyed, TOKEN)
    assert scraped["up"][0][1] == 1.0
    assert promql.evaluate("max(inference_workers)", scraped)[0][1] == 1.0
    assert not promql.evaluate(rule("InferenceApiTargetDown"), scraped)


def test_without_the_token_the_scrape_is_refused_and_the_target_down_rule_fires(keyed):
    for credentials in (None, "wrong-token"):
        scraped = scrape(keyed, credentials)
        assert scraped["up"][0][1] == 0.0
        assert promql.evaluate(rule("InferenceApiTargetDown"), scraped)
    assert not promql.evaluate(rule("InferenceApiTargetAbsent"), scrape(keyed, None))  # up exists, at 0


def test_the_metrics_token_opens_nothing_but_metrics(keyed):
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert keyed.http.post("/predict", json={"instances": [ROW]}, headers=bearer).status_code == 401
    assert keyed.http.get("/v1/models", headers=bearer).status_code == 401
    assert keyed.http.get("/metrics", headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200


def test_every_instant_rule_evaluates_on_the_live_scrape_and_names_exposed_metrics(keyed):
    scraped = scrape(keyed, TOKEN)
    for r in alert_rules():
        if promql.evaluable(r["expr"]):
            promql.evaluate(r["expr"], scraped)  # raises on anything the rule reads wrongly


def test_the_no_live_workers_alert_fires_when_the_worker_dies_with_work_queued(keyed):
    expr = rule("InferenceNoLiveWorkers")
    assert not promql.evaluate(expr, scrape(keyed, TOKEN))
    (worker,) = keyed.live_worker_processes()
    keyed.signal_worker(worker, signal.SIGKILL)
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    assert keyed.http.post("/predict", json={"instances": [ROW]}, headers=bearer).status_code == 202
    wait_until(lambda: promql.evaluate(expr, scrape(keyed, TOKEN)), timeout_s=30, interval_s=0.5)
