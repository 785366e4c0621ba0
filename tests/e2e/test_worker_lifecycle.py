"""Readiness, shutdown, cancellation, several workers, and a model that cannot be loaded."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from rq.job import Job

from shared import rq_keys
from shared.schema import OrjsonSerializer
from tests.support import wait_until

pytestmark = pytest.mark.e2e


def test_readyz_is_503_before_a_worker_is_up_and_200_after(make_service):
    service = make_service(workers=0)
    before = service.http.get("/readyz")
    assert before.status_code == 503
    assert before.json()["error"]["code"] == "not_ready"
    service.start_worker()
    assert service.http.get("/readyz").json() == {"ready": True, "workers": 1}
    models = service.http.get("/v1/models").json()["models"][0]
    assert models["inputs"] == [{"name": "pixels", "shape": [64], "dtype": "float32"}]
    assert models["batching"]["max_microbatch_rows"] == service.settings.max_microbatch_rows
    assert models["batching"]["microbatch_window"] == service.settings.microbatch_window
    assert len(models["workers"]) == 1


def test_predict_before_any_worker_published_the_model_is_503(make_service):
    service = make_service(workers=0)
    response = service.predict([[0.0] * 64], wait=0)
    assert response.status_code == 503
    assert response.headers["Retry-After"]


def test_sigterm_finishes_the_work_in_hand_and_exits_0_and_queued_jobs_wait_for_the_next_worker(make_service, digits):
    x, _ = digits
    service = make_service()
    worker = service.workers[0]
    job_ids = [service.http.post("/predict", json={"instances": x[:500].tolist()}).json()["id"] for _ in range(10)]
    assert service.stop_process(worker) == 0
    wait_until(lambda: service.http.get("/readyz").status_code == 503, 10)
    states = [service.http.get(f"/result/{j}").json()["status"] for j in job_ids]
    assert set(states) <= {"finished", "queued"}, states  # nothing left half-done
    service.start_worker()
    for job_id in job_ids:
        assert service.http.get(f"/result/{job_id}", params={"wait": 20}).json()["status"] == "finished"


def test_cancel_removes_a_queued_job_and_a_second_cancel_is_409(make_service, digits):
    x, _ = digits
    service = make_service()
    assert service.stop_process(service.workers[0]) == 0
    job_id = service.http.post("/predict", json={"instances": [x[0].tolist()]}).json()["id"]
    cancelled = service.http.delete(f"/jobs/{job_id}")
    assert cancelled.status_code == 200
    assert cancelled.json() == {"id": job_id, "status": "canceled"}
    assert service.http.get(f"/result/{job_id}").json()["status"] == "canceled"
    assert service.http.delete(f"/jobs/{job_id}").status_code == 409
    assert service.http.delete("/jobs/" + "f" * 32).status_code == 404
    assert service.redis.llen(rq_keys.queue(service.settings.queue_name)) == 0
    service.start_worker()
    kept = service.predict([x[1].tolist()], wait=20)
    assert kept.json()["status"] == "finished"
    wait_until(lambda: service.stats().get("rows", 0) >= 1, 10)  # counters are written at most once a second
    assert service.stats()["rows"] == 1  # the cancelled job never ran


def test_two_workers_on_one_queue_run_each_job_exactly_once(make_service, digits):
    x, _ = digits
    service = make_service(workers=2)
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda i: service.predict([x[i % 100].tolist()] * 3, wait=30), range(200)))
    assert all(r.status_code == 200 for r in responses)
    wait_until(lambda: service.stats().get("rows", 0) >= 600, 10)  # counters are written at most once a second
    assert service.stats()["rows"] == 600  # no job was run twice
    job_ids = [r.json()["id"] for r in responses]
    for job in Job.fetch_many(job_ids, connection=service.redis, serializer=OrjsonSerializer):
        assert job.get_status() == "finished"
        assert job.get_status() == "finished"


def test_a_model_that_cannot_be_loaded_stops_the_worker_with_a_clear_message(make_service):
    service = make_service(workers=0, model_path="/nonexistent/model.keras")
    worker = service.start_worker(wait=False)
    assert worker.process.wait(timeout=60) == 3
    assert "/nonexistent/model.keras" in service.logs() and "does not exist" in service.logs()
    assert service.http.get("/readyz").status_code == 503
