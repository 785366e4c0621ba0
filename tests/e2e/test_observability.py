"""Operability on the real service: request ids from API to worker and back, JSON logs, Prometheus metrics
(multiprocess-safe across the API server's processes), and the cancelled-jobs counter."""

from __future__ import annotations

import os
import signal

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def json_service(make_module_service):
    """JSON logs and two API processes (the default server), so metrics must be summed across processes."""
    return make_module_service(log_format="json", api_processes=2)


def _json_lines(path):
    lines = []
    for raw in path.read_text().splitlines():
        if raw.startswith("{") and raw.endswith("}"):  # not a line still being written
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


def test_every_line_the_api_writes_is_one_json_object(json_service):
    json_service.http.get("/healthz")
    text = (json_service.log_dir / "api.log").read_text()
    complete = text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]  # not a line being written
    loggers = {orjson.loads(line)["logger"] for line in complete}  # raises on a line that is not JSON
    assert "api.access" in loggers


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


def _scrape(service, request_id: str) -> tuple[dict, int]:
    """GET /metrics on a new connection: its samples, and the pid of the API process that answered (from
    its access log line)."""
    text = httpx.get(service.base_url + "/metrics", headers={"X-Request-ID": request_id}, timeout=30).text

    def answered_by():
        lines = [e for e in _json_lines(service.log_dir / "api.log") if e.get("request_id") == request_id]
        return next((e["pid"] for e in lines if e["logger"] == "api.access"), None)

    return _samples(text), wait_until(answered_by, 10)


def test_metrics_add_up_across_gunicorn_processes(make_service):
    # gunicorn's processes share one listening socket, so with one stopped the other takes every connection.
    # granian gives each process a socket of its own (SO_REUSEPORT), where a stopped process's share of new
    # connections waits: its own test (tests/e2e/test_api_servers.py) lets both processes answer instead.
    service = make_service(workers=0, api_server="gunicorn", log_format="json", api_processes=2)
    key = ("inference_http_requests_total", (("method", "GET"), ("route", "/metrics"), ("status", "200")))
    first, first_pid = _scrape(service, "scrape-first")
    # With the process that answered frozen, only the other one can answer: the next scrapes are its own,
    # and each counts every earlier scrape, whichever process served it.
    os.kill(first_pid, signal.SIGSTOP)
    try:
        scrapes = [_scrape(service, f"scrape-{i}") for i in range(3)]
    finally:
        os.kill(first_pid, signal.SIGCONT)
    assert first_pid not in {pid for _, pid in scrapes}  # a second process answered them
    assert [samples.get(key, 0) for samples, _ in scrapes] == [first.get(key, 0) + 1 + i for i in range(3)]
