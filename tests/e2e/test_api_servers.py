"""The API under granian, the default server (API_SERVER): it keeps what gunicorn gives the API (request ids,
long-polls on a thread, metrics summed across its processes, a drain on SIGTERM) and a hung process is killed
and replaced (api/process_watchdog.py), as gunicorn's master does with its `timeout`."""

from __future__ import annotations

import os
import re
import signal
import threading

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared import rq_keys
from tests.support import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def granian(make_module_service, tmp_path_factory):
    return make_module_service(api_server="granian", api_processes=2, metrics_dir=str(tmp_path_factory.mktemp("m")))


def test_granian_answers_predict_with_its_server_header_and_the_request_id(granian, digits):
    x, _ = digits
    response = granian.http.post(
        "/predict?wait=10", json={"instances": x[:3].tolist()}, headers={"X-Request-ID": "granian-1"}
    )
    assert response.status_code == 200 and response.json()["status"] == "finished"
    assert response.headers["server"] == "granian"  # gunicorn answers "gunicorn"
    assert response.headers["X-Request-ID"] == "granian-1" and response.json()["request_id"] == "granian-1"


def test_metrics_add_up_across_granian_processes(granian):
    key = ("inference_http_requests_total", (("method", "GET"), ("route", "/metrics"), ("status", "200")))

    def scraped() -> float:
        text = httpx.get(granian.base_url + "/metrics", timeout=30).text
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        return samples.get(key, 0)

    before = scraped()
    seen = [scraped() for _ in range(12)]  # a new connection each time
    assert seen == [before + 1 + i for i in range(12)]  # each scrape counts every earlier one, whoever served it
    files = os.listdir(granian.settings.metrics_dir)
    writers = {m.group(1) for m in map(re.compile(r"counter_(\d+)\.db").fullmatch, files) if m}
    assert len(writers) == 2, writers  # both granian processes answered and wrote their counts


def test_sigterm_lets_a_long_poll_in_flight_finish(make_service, digits):
    x, _ = digits
    service = make_service(api_server="granian", workers=1)
    assert service.predict(x[:1].tolist()).status_code == 200  # the worker published the model's signature
    assert service.stop_process(service.workers[0]) == 0  # now nothing runs the next job
    answers: list[httpx.Response] = []
    waiting = threading.Thread(
        target=lambda: answers.append(service.http.post("/predict?wait=3", json={"instances": x[:1].tolist()}))
    )
    waiting.start()
    queue = rq_keys.queue(service.settings.queue_name)
    wait_until(lambda: service.redis.llen(queue) == 1, 10)  # the request is in flight, holding its thread
    service.harness.kill(service.api, 15)  # SIGTERM to granian's process group
    waiting.join(30)
    assert answers and answers[0].status_code == 202  # the wait ran out and was answered, not cut off
    assert service.api.process.wait(timeout=30) == 0


def pids_that_served(service) -> set[int]:
    """The API processes that have served a request (each writes its metrics file when it first counts one)."""
    httpx.get(service.base_url + "/healthz", timeout=30)  # a new connection: either process may take it
    files = os.listdir(service.settings.metrics_dir)
    return {int(m.group(1)) for m in map(re.compile(r"counter_(\d+)\.db").fullmatch, files) if m}


def gone(pid: int) -> bool:
    """The process exited and was reaped (or is a zombie about to be)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_stopped_api_process_is_killed_and_replaced_and_the_service_answers_after(make_service, digits, tmp_path):
    x, _ = digits
    service = make_service(api_server="granian", api_processes=2, api_process_timeout_s=2, metrics_dir=str(tmp_path))
    first = wait_until(lambda: len(service.api_worker_pids()) == 2 and service.api_worker_pids(), 30)
    # Both have served a request, so both run their heartbeats (started before the app is built).
    wait_until(lambda: pids_that_served(service) >= set(first), 30)
    stopped, other = first
    os.kill(stopped, signal.SIGSTOP)  # it runs no more Python: no heartbeat, no requests
    try:
        wait_until(lambda: gone(stopped), 30)
        replaced = wait_until(lambda: len(pids := service.api_worker_pids()) == 2 and stopped not in pids and pids, 30)
    finally:
        if not gone(stopped):
            os.kill(stopped, signal.SIGCONT)
    assert other in replaced  # only the stopped process was killed
    assert "sent no heartbeat" in service.logs()
    assert service.predict(x[:1].tolist()).status_code == 200
    assert service.api.running
