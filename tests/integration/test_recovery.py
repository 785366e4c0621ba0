"""Leases, requeues, the publish fence and the queued-rows counter, against a real Redis.

The worker's own modules run in the test process (claim, run, publish, recovery) with a tiny numpy
model, so each step of a crash or a race can be staged exactly; the end-to-end tests do the same with
real processes and real signals.
"""

from __future__ import annotations

import time

import numpy as np
import orjson
import pytest
from rq.job import Job

from api.jobs.redis_jobs import RedisJobs
from shared import keys, rq_keys
from shared.config import Settings
from shared.schema import OrjsonSerializer
from shared.signature import ModelSignature, TensorSpec
from tests.support import wait_until
from worker.microbatcher import collect
from worker.model.loader import LoadedModel, SignatureCall
from worker.outcomes import Tally
from worker.publish import Publisher
from worker.recovery import Recovery
from worker.redis_source import Lane, RedisSource
from worker.runner import run_microbatch

pytestmark = pytest.mark.integration

SIGNATURE = ModelSignature("double", "1", (TensorSpec("x", (2,), "float32"),), (TensorSpec("y", (2,), "float32"),))
QUEUE = "predict"


class Node:
    """One in-process worker: its source, publisher and recovery sweep, over a real Redis."""

    def __init__(self, connection, settings: Settings, name: str, lease_s: int = 60) -> None:
        self.connection = connection
        self.tally = Tally(rq_keys.worker(name))
        self.source = RedisSource(connection, [QUEUE], name, lease_s)
        self.publisher = Publisher(connection, [QUEUE], SIGNATURE, settings.result_ttl, self.tally)
        self.recovery = Recovery(connection, [QUEUE], name, 1.0, settings.result_ttl, settings.max_attempts)
        self.model = LoadedModel(SIGNATURE, {"serving_default": SignatureCall(lambda arrays: {"y": arrays["x"] * 2})})

    def claim(self, delay_s: float = 0.0) -> list:
        return collect(self.source, 64, delay_s, 0.0)

    def run_and_publish(self, batch) -> list:
        stats = run_microbatch(self.model, batch) if batch else None
        lost = self.publisher.publish(self.source.take_finished(), stats)
        self.tally.flush(self.connection)
        return lost


@pytest.fixture
def settings(redis_db) -> Settings:
    url = "redis://{host}:{port}/{db}".format(**redis_db.connection_pool.connection_kwargs)
    return Settings.from_env({}).replace(redis_url=url, max_attempts=2, max_queue_depth=1000)


@pytest.fixture
def jobs(redis_db, settings) -> RedisJobs:
    return RedisJobs(redis_db, settings)


def submit(jobs: RedisJobs, value: float, rows: int = 1, **kwargs) -> str:
    return jobs.submit({"x": np.full((rows, 2), value, dtype=np.float32)}, **kwargs)


def lapse(redis_db) -> None:
    """Make every lease in the started registry lapse now (as if its worker stopped beating)."""
    registry = rq_keys.started(QUEUE)
    redis_db.zadd(registry, {lease: 1 for lease in redis_db.zrange(registry, 0, -1)}, xx=True)


def documents(redis_db, job_id: str) -> list[dict]:
    result = redis_db.hget(rq_keys.job(job_id), keys.JOB_RESULT)
    return [] if result is None else [orjson.loads(result)]


def queued_rows(redis_db) -> int:
    """The queue depth in rows, as the API computes it."""
    return redis_db.llen(rq_keys.queue(QUEUE)) + int(redis_db.get(keys.extra_rows(QUEUE)) or 0)


def test_a_lapsed_lease_is_requeued_and_the_late_publish_of_the_first_worker_is_skipped(redis_db, settings, jobs):
    ids = [submit(jobs, v) for v in (1.0, 2.0)]
    slow, other = Node(redis_db, settings, "slow"), Node(redis_db, settings, "other")
    batch = slow.claim()
    assert len(batch) == 2
    lapse(redis_db)
    counts = other.recovery.sweep(QUEUE)
    assert (counts.requeued, counts.failed) == (2, 0)
    late_arrival = submit(jobs, 3.0)
    queued = [i.decode() for i in redis_db.lrange(rq_keys.queue(QUEUE), 0, -1)]
    assert set(queued[:2]) == set(ids) and queued[2] == late_arrival  # requeued at the front
    redis_db.lrem(rq_keys.queue(QUEUE), 1, late_arrival)
    assert queued_rows(redis_db) == 2
    assert slow.run_and_publish(batch) != []  # fenced out: no longer its jobs
    assert all(documents(redis_db, i) == [] for i in ids)
    for _ in ids:
        other.run_and_publish(other.claim())
    for job_id, value in zip(ids, (1.0, 2.0)):
        assert [d["status"] for d in documents(redis_db, job_id)] == ["finished"]
        assert documents(redis_db, job_id)[0]["predictions"] == [[2 * value] * 2]
        job = Job.fetch(job_id, connection=redis_db, serializer=OrjsonSerializer)
        assert job.get_status() == "finished" and job.retries_left == 0
    assert redis_db.zcard(rq_keys.started(QUEUE)) == 0
    assert queued_rows(redis_db) == 0


def test_a_job_requeued_after_a_crash_is_claimed_alone_and_never_by_a_busy_worker(redis_db, settings, jobs):
    suspect = submit(jobs, 1.0)
    first = Node(redis_db, settings, "first")
    first.claim()
    lapse(redis_db)
    first.recovery.sweep(QUEUE)
    fresh = [submit(jobs, v) for v in (2.0, 3.0)]
    node = Node(redis_db, settings, "node")
    busy_job = submit(jobs, 9.0, rows=100)  # more rows than one batch of 64: the worker stays busy with it
    redis_db.lrem(rq_keys.queue(QUEUE), 1, busy_job)
    redis_db.lpush(rq_keys.queue(QUEUE), busy_job)  # now at the head, before the suspect
    batch = node.claim()
    assert [s.claim.id for s in batch] == [busy_job]  # the suspect behind it was not taken along
    node.run_and_publish(batch)
    batch = node.claim()  # still holding rows of busy_job: the suspect at the head is not claimed
    assert {s.claim.id for s in batch} == {busy_job}
    node.run_and_publish(batch)
    batch = node.claim(delay_s=0.5)
    assert [(s.claim.id, s.rerun) for s in batch] == [(suspect, True)]  # alone, and at once despite the window
    node.run_and_publish(batch)
    batch = node.claim()
    assert sorted(s.claim.id for s in batch) == sorted(fresh)
    node.run_and_publish(batch)
    assert all(len(documents(redis_db, i)) == 1 for i in [suspect, busy_job, *fresh])


def test_a_job_whose_worker_died_on_its_last_attempt_fails_as_worker_lost(redis_db, settings, jobs):
    job_id = submit(jobs, 1.0)
    node = Node(redis_db, settings, "node")
    for _ in range(settings.max_attempts):
        assert [s.claim.id for s in node.claim()] == [job_id]
        node.source.pending.clear()  # the worker "dies": forgets what it held
        lapse(redis_db)
        node.recovery.sweep(QUEUE)
    [doc] = documents(redis_db, job_id)
    assert doc["status"] == "failed" and doc["error"]["code"] == "worker_lost"
    assert "MAX_ATTEMPTS=2" in doc["error"]["message"]
    job = Job.fetch(job_id, connection=redis_db, serializer=OrjsonSerializer)
    assert job.get_status() == "failed" and redis_db.zscore(rq_keys.failed(QUEUE), job_id) is not None
    assert redis_db.llen(rq_keys.queue(QUEUE)) == 0 and queued_rows(redis_db) == 0


def test_queued_rows_follow_submit_claim_cancel_and_drift_is_reset_when_the_queue_empties(redis_db, settings, jobs):
    kept, cancelled = submit(jobs, 1.0, rows=4), submit(jobs, 2.0, rows=6)
    assert queued_rows(redis_db) == 10
    jobs.cancel(cancelled)
    assert queued_rows(redis_db) == 4
    node = Node(redis_db, settings, "node")
    node.run_and_publish(node.claim())
    assert queued_rows(redis_db) == 0 and documents(redis_db, kept)[0]["status"] == "finished"
    redis_db.set(keys.extra_rows(QUEUE), 55)  # drift, e.g. a queue emptied with RQ's own tools
    node.recovery.sweep(QUEUE)
    assert queued_rows(redis_db) == 0


def test_a_job_past_its_deadline_is_expired_at_claim_and_never_run(redis_db, settings, jobs):
    late = submit(jobs, 1.0, deadline_s=0.001)
    on_time = submit(jobs, 2.0, deadline_s=600)
    deadline = float(redis_db.hget(rq_keys.job(late), keys.JOB_DEADLINE))
    wait_until(lambda: time.time() > deadline)
    node = Node(redis_db, settings, "node")
    node.run_and_publish(node.claim())
    [doc] = documents(redis_db, late)
    assert doc["status"] == "expired" and doc["error"]["code"] == "deadline_exceeded"
    assert documents(redis_db, on_time)[0]["status"] == "finished"
    assert float(redis_db.hget(keys.stats(), "rows")) == 1  # only the job on time reached the model
    assert jobs.state(late).status.value == "expired"


def test_publishing_the_same_results_again_writes_nothing(redis_db, settings, jobs):
    job_id = submit(jobs, 1.0)
    node = Node(redis_db, settings, "node")
    batch = node.claim()
    run_microbatch(node.model, batch)
    finished = node.source.take_finished()
    assert node.publisher.publish(finished, None) == []
    assert node.publisher.publish(finished, None) == finished  # e.g. a retry after the reply was lost
    assert len(documents(redis_db, job_id)) == 1
    assert Job.fetch(job_id, connection=redis_db, serializer=OrjsonSerializer).get_status() == "finished"


def test_a_job_whose_fields_another_writer_left_unreadable_fails_alone_and_its_batch_mates_run(
    redis_db, settings, jobs
):
    first, foreign, last = submit(jobs, 1.0), submit(jobs, 2.0), submit(jobs, 3.0)
    # as RQ's own enqueue with its default (pickle) serializer might leave a job: meta and payload not JSON
    redis_db.hset(rq_keys.job(foreign), mapping={"meta": b"\x80\x04}\x94.", "data": b"\x80\x04N.", "enqueued_at": "x"})
    node = Node(redis_db, settings, "node")
    node.run_and_publish(node.claim())
    assert [documents(redis_db, j)[0]["predictions"] for j in (first, last)] == [[[2.0, 2.0]], [[6.0, 6.0]]]
    [doc] = documents(redis_db, foreign)
    assert doc["status"] == "failed" and doc["error"]["code"] == "invalid_payload"
    assert redis_db.zcard(rq_keys.started(QUEUE)) == 0  # no lease left behind


def test_an_id_queued_twice_runs_once(redis_db, settings, jobs):
    job_id = submit(jobs, 1.0)
    node = Node(redis_db, settings, "node")
    redis_db.rpush(rq_keys.queue(QUEUE), job_id)  # e.g. a submit retried after its reply was lost
    batch = node.claim()
    assert [s.claim.id for s in batch] == [job_id]
    node.run_and_publish(batch)
    assert node.claim() == []
    assert len(documents(redis_db, job_id)) == 1
    assert redis_db.llen(rq_keys.queue(QUEUE)) == 0


def test_expired_jobs_and_jobs_lost_to_worker_deaths_are_counted_on_the_metrics_page(redis_db, settings, jobs):
    from api.metrics import ServiceCollector

    late = submit(jobs, 1.0, deadline_s=0.001)
    deadline = float(redis_db.hget(rq_keys.job(late), keys.JOB_DEADLINE))
    wait_until(lambda: time.time() > deadline)
    node = Node(redis_db, settings, "node")
    node.run_and_publish(node.claim())  # expired at claim, never run
    lost = submit(jobs, 2.0)
    for _ in range(settings.max_attempts):  # its worker dies on every attempt
        node.claim()
        node.source.pending.clear()
        lapse(redis_db)
        node.recovery.sweep(QUEUE)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in ServiceCollector(redis_db).collect()
        for s in family.samples
    }
    assert samples[("inference_jobs_total", (("status", "expired"),))] == 1
    assert samples[("inference_jobs_total", (("status", "failed"),))] == 1
    assert samples[("inference_job_errors_total", (("code", "deadline_exceeded"),))] == 1
    assert samples[("inference_job_errors_total", (("code", "worker_lost"),))] == 1
    assert documents(redis_db, lost)[0]["error"]["code"] == "worker_lost"


@pytest.mark.counts_commands
def test_a_wait_shorter_than_redis_can_time_is_slept_not_sent_as_a_blocking_command(redis_db, settings, jobs):
    # Redis reads a blocking timeout under its 100 ms tick as 0, "wait forever": a worker that sent one
    # would stall until the next job arrives (found by make fuzz: 30 s stalls with the adaptive window).
    node = Node(redis_db, settings, "node")
    redis_db.config_resetstat()
    assert node.source.take(8, 0.0005) == []  # the queue is empty: an idle worker's first look
    assert node.source.take(8, 0.0005) == []  # now it waits first (every queue ran out)
    assert "cmdstat_blmove" not in redis_db.info("commandstats")
    submit(jobs, 1.0)
    assert [s.claim.rows for s in node.source.take(8, 0.0005)] == [1]


@pytest.mark.counts_commands
def test_with_several_models_a_short_wait_is_not_stretched_into_a_blocking_command(redis_db):
    # The idle wait is split over the models' interactive lanes, at least MIN_BLOCK_S each; a wait shorter
    # than that (a micro-batch's filling window) is slept, not sent as a 100 ms BLMOVE on one model's ring.
    lanes = [Lane("predict", "m1"), Lane("predict-m2", "m2"), Lane("predict-bulk", "m1", bulk=True)]
    source = RedisSource(redis_db, [lane.queue for lane in lanes], "w", lease_s=60, lanes=lanes)
    redis_db.config_resetstat()
    assert source.take(8, 0.0) == [] and source.take(8, 0.05) == []
    assert "cmdstat_blmove" not in redis_db.info("commandstats")
