"""API_SERVER=granian: the harness starts granian (WSGI) serving the same app, and it keeps what gunicorn
gives the API: request ids, long-polls on a thread, metrics summed across its processes, a drain on SIGTERM."""

from __future__ import annotations

import os
import re
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
