"""Overload: a full queue answers 429 at once, a job past its deadline expires without running, and the
API keeps answering health checks and polls while the worker cannot keep up.

The worker is frozen with SIGSTOP to stand for a worker that cannot keep up: what is submitted stays queued.
"""

from __future__ import annotations

import time

import pytest
from rq.job import Job

from shared import keys, rq_keys
from tests.support import Service, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def busy(make_module_service) -> Service:
    return make_module_service(max_queue_depth=20, job_start_deadline_s=600)


def test_a_full_queue_answers_429_without_parsing_the_body_and_the_api_stays_responsive(busy, digits):
    x, _ = digits
    with busy.frozen_worker():
        job_ids = [
            busy.http.post("/predict", json={"instances": x[5 * i : 5 * i + 5].tolist()}).json()["id"] for i in range(4)
        ]  # 20 rows: the queue is full
        rejected = busy.http.post("/predict", params={"wait": 5}, json={"instances": [x[0].tolist()]})
        assert rejected.status_code == 429
        assert rejected.json()["error"]["code"] == "queue_full"
        assert "MAX_QUEUE_DEPTH=20" in rejected.json()["error"]["message"]
        assert int(rejected.headers["Retry-After"]) >= 1
        # Not even parsed: a body that is not JSON at all gets the same answer.
        garbage = busy.http.post("/predict", content=b"\xff" * 1_000_000, headers={"Content-Type": "application/json"})
        assert garbage.status_code == 429
        queue = rq_keys.queue(busy.settings.queue_name)
        assert busy.redis.llen(queue) == 4  # a frozen worker's BLMOVE leaves the queue as it was
        assert busy.redis.llen(queue) + int(busy.redis.get(keys.extra_rows(busy.settings.queue_name))) == 20
        # Health checks, polls and long-polls answer while the work waits.
        assert busy.http.get("/healthz", timeout=5).status_code == 200
        assert busy.http.get(f"/result/{job_ids[0]}", timeout=5).json()["status"] == "queued"
        assert busy.http.get(f"/result/{job_ids[0]}", params={"wait": 0.5}, timeout=5).status_code == 202
    for job_id in job_ids:
        assert busy.http.get(f"/result/{job_id}", params={"wait": 20}).json()["status"] == "finished"
    assert busy.predict([x[0].tolist()]).status_code == 200  # room again


def test_a_job_not_started_before_its_timeout_expires_and_never_runs(busy, digits):
    x, _ = digits
    with busy.frozen_worker():
        by_query = busy.http.post("/predict", params={"timeout": 0.2}, json={"instances": [x[0].tolist()]}).json()["id"]
        by_body = busy.http.post("/predict", json={"instances": [x[1].tolist()], "timeout": 0.2}).json()["id"]
        by_default = busy.http.post("/predict", json=[x[2].tolist()]).json()["id"]
        deadlines = [float(busy.redis.hget(Job.key_for(j), keys.JOB_DEADLINE)) for j in (by_query, by_body, by_default)]
        assert deadlines[2] - time.time() > 500  # JOB_START_DEADLINE_S=600 applies when the client sends none
        wait_until(lambda: time.time() > max(deadlines[:2]), 5)
        # Reported expired as soon as the deadline passed, before any worker reached the job.
        assert busy.http.get(f"/result/{by_query}").json()["status"] == "expired"
        assert busy.http.get(f"/result/{by_default}").json()["status"] == "queued"
    for job_id in (by_query, by_body):
        response = busy.http.get(f"/result/{job_id}", params={"wait": 20})
        assert response.status_code == 200
        assert response.json()["status"] == "expired"
        assert response.json()["error"]["code"] == "deadline_exceeded"
    assert busy.http.get(f"/result/{by_default}", params={"wait": 20}).json()["status"] == "finished"
    # The expired jobs never reached the model: the worker failed them at claim time (and said why).
    for job_id in (by_query, by_body):
        line = f"job {job_id} expired: deadline_exceeded"
        wait_until(lambda line=line: line in busy.logs(), 10)


@pytest.mark.parametrize("timeout", ["0", "-1", "soon", "nan", "1e400", "86401"])
def test_a_timeout_that_is_not_a_positive_number_of_seconds_is_400(busy, timeout):
    response = busy.http.post("/predict", params={"timeout": timeout}, json={"instances": [[0.0] * 64]})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "timeout"
