"""Operability on the real service: request ids from API to worker and back, JSON logs, Prometheus metrics
(multiprocess-safe under gunicorn), and the cancelled-jobs counter."""

from __future__ import annotations

import httpx
import numpy as np
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.jobs.redis_jobs import RedisJobs
from shared import keys
from shared.config import Settings
from tests.support import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def json_service(make_module_service):
    """JSON logs and two gunicorn processes, so metrics must be summed across processes."""
    return make_module_service(log_format="json", api_processes=2)


def _json_lines(path):
    lines = []
    for raw in path.read_text().splitlines():
        if raw.startswith("{"):
            lines.append(orjson.loads(raw))
    return lines


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_request_id_goes_from_api_to_worker_and_back(json_service, digits):
    x, _ = digits
    response = json_service.http.post(
        "/predict?wait=10", json={"instances": x[:2].tolist()}, headers={"X-Request-ID": "trace-42"}
    )
    assert response.headers["X-Request-ID"] == "trace-42"
    document = response.json()
    assert document["status"] == "finished" and document["request_id"] == "trace-42"

    def worker_line():
        lines = [e for e in _json_lines(json_service.log_dir / "worker-0.log") if e.get("request_id") == "trace-42"]
        return lines[0] if lines else None

    line = wait_until(worker_line, 10)
    assert line["job_id"] == document["id"] and "finished" in line["message"]
    api_lines = [e for e in _json_lines(json_service.log_dir / "api.log") if e.get("request_id") == "trace-42"]
    assert any(e["logger"] == "api.access" and e["path"] == "/predict" and e["status"] == 200 for e in api_lines)


def test_every_response_carries_a_request_id_and_bad_ones_are_replaced(json_service):
    for path in ("/healthz", "/v2/health/live", "/v1/models/nope", "/no/such/route"):
        response = json_service.http.get(path, headers={"X-Request-ID": "id-1"})
        assert response.headers["X-Request-ID"] == "id-1", path
    replaced = json_service.http.get("/healthz", headers={"X-Request-ID": "bad id with spaces"}).headers["X-Request-ID"]
    assert replaced != "bad id with spaces" and len(replaced) == 32
    assert len(json_service.http.get("/healthz").headers["X-Request-ID"]) == 32


def test_metrics_expose_queues_jobs_latency_batches_workers_and_model_load(json_service, digits):
    x, _ = digits
    for i in range(5):
        assert json_service.predict(x[i : i + 2].tolist()).json()["status"] == "finished"
    finished = ("inference_jobs_total", (("status", "finished"),))
    # Workers write their counters at most once a second.
    wait_until(lambda: _samples(json_service.http.get("/metrics").text).get(finished, 0) >= 5, 10)
    response = json_service.http.get("/metrics")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    samples = _samples(response.text)
    assert samples[("inference_queued_jobs", (("queue", "predict"),))] == 0
    assert samples[("inference_queue_depth", (("queue", "predict"),))] == 0  # the deprecated old name, kept one release
    assert samples[("inference_workers", ())] == 1
    assert samples[("inference_model_load_seconds", (("model", "digits"), ("version", "1")))] > 0
    assert samples[("inference_jobs_total", (("status", "finished"),))] >= 5
    assert samples[("inference_job_latency_seconds_count", ())] >= 5
    assert samples[("inference_job_latency_seconds_bucket", (("le", "+Inf"),))] >= 5
    assert samples[("inference_microbatch_rows_sum", ())] >= 10
    assert samples[("inference_microbatch_seconds_count", ())] >= 1
    assert (
        samples[("inference_http_requests_total", (("method", "POST"), ("route", "/predict"), ("status", "200")))] >= 5
    )
    assert samples[("inference_http_request_seconds_count", (("method", "POST"), ("route", "/predict")))] >= 5


def test_metrics_add_up_across_gunicorn_processes(json_service):
    key = ("inference_http_requests_total", (("method", "GET"), ("route", "/metrics"), ("status", "200")))
    before = _samples(json_service.http.get("/metrics").text).get(key, 0)
    seen = []
    for _ in range(12):  # a new connection each time, so both processes answer some of these
        seen.append(_samples(httpx.get(json_service.base_url + "/metrics", timeout=30).text).get(key, 0))
    # Each scrape counts every earlier scrape, whichever process served it.
    assert seen == [before + 1 + i for i in range(12)]


def test_cancelled_jobs_are_counted(redis_db, redis_url):
    jobs = RedisJobs(redis_db, Settings.from_env({}))
    job_id = jobs.submit({"pixels": np.zeros((1, 64), np.float32)}, request_id="r")
    jobs.cancel(job_id)
    assert float(redis_db.hget(keys.metrics(), "inference_jobs_total:canceled")) == 1
