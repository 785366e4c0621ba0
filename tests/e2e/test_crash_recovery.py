"""A worker killed in the middle of a batch loses no job; a job that keeps killing workers is failed.

The model doubles its input and, like a native op that crashes, aborts the whole worker process on any
row holding POISON. Workers are real processes; the test plays the process supervisor and starts a new
worker whenever none is alive.
"""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
import tensorflow as tf
from rq.job import Job

from shared import rq_keys
from shared.schema import OrjsonSerializer
from tests.support import Service, wait_until

pytestmark = pytest.mark.e2e

POISON = 1000.0


class Poisonous(tf.Module):
    """y = 2x; a row with a value of POISON or more aborts the process (SIGABRT), as a crashing op would."""

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def serve(self, x):
        def crash():
            with tf.control_dependencies([tf.raw_ops.Abort(error_msg="poison row", exit_without_error=False)]):
                return tf.identity(x)

        return {"y": 2.0 * tf.cond(tf.reduce_any(x >= POISON), crash, lambda: tf.identity(x))}


@pytest.fixture(scope="module")
def crashy(make_module_service, tmp_path_factory) -> Service:
    path = str(tmp_path_factory.mktemp("poisonous") / "model")
    module = Poisonous()
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    # A 2 s batch window keeps claimed jobs in the worker's hands long enough to kill it there;
    # leases last 3 beats + the window = 4 s.
    return make_module_service(
        model_path=path, max_microbatch_delay_ms=2000, microbatch_window="fixed", heartbeat_s=0.5, max_attempts=2
    )


def submit_together(service: Service, values: list[float]) -> list[str]:
    with ThreadPoolExecutor(len(values)) as pool:
        responses = list(pool.map(lambda v: service.http.post("/predict", json={"instances": [[v] * 4]}), values))
    assert [r.status_code for r in responses] == [202] * len(values)
    return [r.json()["id"] for r in responses]


def assert_finished_once(service: Service, job_id: str, value: float) -> Job:
    body = service.http.get(f"/result/{job_id}", params={"wait": 30}).json()
    assert body["status"] == "finished", body
    assert body["predictions"] == [[2.0 * value] * 4]
    assert [orjson.loads(d)["status"] for d in service.documents(job_id)] == ["finished"]
    job = Job.fetch(job_id, connection=service.redis, serializer=OrjsonSerializer)
    assert job.get_status() == "finished"
    return job


def test_jobs_held_by_a_sigkilled_worker_are_finished_by_the_next_worker_exactly_once(crashy):
    values = [float(i) for i in range(8)]
    job_ids = submit_together(crashy, values)
    wait_until(lambda: all(crashy.job_status(j) == "started" for j in job_ids), 10)  # all inside one batch window
    [victim] = crashy.live_worker_processes()
    crashy.signal_worker(victim, signal.SIGKILL)
    crashy.start_worker()
    for job_id, value in zip(job_ids, values):
        job = assert_finished_once(crashy, job_id, value)
        assert job.retries_left == 0  # it was queued again once: the killed worker never finished it
    assert crashy.redis.zcard(rq_keys.started(crashy.settings.queue_name)) == 0  # nothing left `started`


def test_a_job_that_crashes_every_worker_fails_after_max_attempts_and_its_batch_mates_finish(crashy):
    values = [1.0, 2.0, 3.0, 4.0, POISON]
    *innocent, poison = submit_together(crashy, values)
    deaths = 0

    def supervise() -> bool:
        nonlocal deaths
        deaths = sum(1 for w in crashy.workers if w.returncode is not None and w.returncode != -signal.SIGKILL)
        if not crashy.live_worker_processes():
            crashy.start_worker(wait=False)
        return bool(crashy.documents(poison))

    wait_until(supervise, 90, interval_s=0.2)
    body = crashy.http.get(f"/result/{poison}").json()
    assert body["status"] == "failed" and body["error"]["code"] == "worker_lost"
    assert "MAX_ATTEMPTS=2" in body["error"]["message"]
    # The poison job killed a worker on each of its 2 attempts; the second time it was alone, so the
    # jobs batched with it the first time had attempts left, and finish.
    assert deaths == 2
    for job_id, value in zip(innocent, values):
        assert_finished_once(crashy, job_id, value)
    assert "Abort_op intentional failure; poison row" in crashy.logs()


def test_a_bulk_chunk_that_crashes_every_worker_is_failed_after_max_attempts_and_its_batch_still_ends(crashy):
    rows = b"".join(orjson.dumps([v] * 4) + b"\n" for v in [1.0, 2.0, POISON, 3.0])
    created = crashy.http.post("/batches", content=rows, headers={"Content-Type": "application/x-ndjson"})
    assert created.status_code == 202, created.text
    batch_id = created.json()["id"]
    dead_before = sum(1 for w in crashy.workers if w.returncode is not None and w.returncode != -signal.SIGKILL)

    def supervise() -> dict | None:
        if not crashy.live_worker_processes():
            crashy.start_worker(wait=False)
        status = crashy.http.get(f"/batches/{batch_id}").json()
        return status if status["status"] in ("completed", "failed") else None

    status = wait_until(supervise, 90, interval_s=0.2)
    deaths = sum(1 for w in crashy.workers if w.returncode is not None and w.returncode != -signal.SIGKILL)
    assert deaths - dead_before == 2  # one per attempt (MAX_ATTEMPTS=2), then the chunk is failed, not retried
    assert status["failed_rows"] == 4 and status["done_rows"] == 0
    # Recovery failed the chunk (worker_lost), so no worker wrote its error file: /errors still lists its rows.
    errors = [orjson.loads(line) for line in crashy.http.get(f"/batches/{batch_id}/errors").content.splitlines()]
    assert [e["row"] for e in errors] == [0, 1, 2, 3]
    assert all("MAX_ATTEMPTS=2" in e["error"] for e in errors), errors
