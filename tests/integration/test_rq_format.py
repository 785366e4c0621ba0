"""What our scripts write in RQ's format reads back through RQ's own public API and command line.

shared/rq_keys.py is the one place that knows RQ's storage format; this test fails loudly when an RQ
upgrade changes any of it: key names, job hash fields, statuses, registry conventions.
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
from rq import Queue
from rq.job import Job
from rq.registry import CanceledJobRegistry, FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry

from api.jobs.redis_jobs import RedisJobs
from shared import rq_keys
from shared.config import Settings
from shared.payload import PREDICT_FUNC
from shared.schema import ErrorCode, JobError, JobStatus, OrjsonSerializer
from worker.claim import Claim
from worker.publish import Ending, publish_endings
from worker.redis_source import claim_jobs

pytestmark = pytest.mark.integration

QUEUE = "predict"


@pytest.fixture
def settings(redis_db) -> Settings:
    url = "redis://{host}:{port}/{db}".format(**redis_db.connection_pool.connection_kwargs)
    return Settings.from_env({}).replace(redis_url=url, max_attempts=3)


def claim_three(redis_db) -> list:
    """The worker's claim (claim.lua) of up to three jobs of QUEUE, under claim token "t"."""
    return claim_jobs(
        redis_db,
        [QUEUE],
        [3],
        quanta=[64],
        weights={},
        most=3,
        room=3,
        token="t",
        lease_until=time.time() + 60,
        worker_name="w",
        busy=False,
    )


def test_our_key_names_are_rqs(redis_db):
    assert rq_keys.queue(QUEUE) == Queue(QUEUE, connection=redis_db).key
    assert rq_keys.job("x") == Job.key_for("x")
    assert rq_keys.started(QUEUE) == StartedJobRegistry(QUEUE, connection=redis_db).key
    assert rq_keys.finished(QUEUE) == FinishedJobRegistry(QUEUE, connection=redis_db).key
    assert rq_keys.failed(QUEUE) == FailedJobRegistry(QUEUE, connection=redis_db).key
    assert rq_keys.canceled(QUEUE) == CanceledJobRegistry(QUEUE, connection=redis_db).key


def test_jobs_we_submit_claim_and_end_read_back_through_rqs_api_at_every_step(redis_db, settings):
    jobs = RedisJobs(redis_db, settings)
    ids = [jobs.submit({"x": np.zeros((1, 2), dtype=np.float32)}) for _ in range(4)]
    queue = Queue(QUEUE, connection=redis_db, serializer=OrjsonSerializer)
    assert queue.count == 4 and queue.job_ids == ids
    job = Job.fetch(ids[0], connection=redis_db, serializer=OrjsonSerializer)
    assert job.get_status() == JobStatus.QUEUED.value and job.origin == QUEUE and job.func_name == PREDICT_FUNC
    assert set(job.args[0]) == {"rows", "inputs"} and job.retries_left == 2 and job.enqueued_at is not None
    jobs.cancel(ids[3])

    claimed = claim_three(redis_db)
    assert len(claimed) == 3 and queue.count == 0
    started = StartedJobRegistry(QUEUE, connection=redis_db)
    assert sorted(started.get_job_ids(cleanup=False)) == sorted(ids[:3])
    assert Job.fetch(ids[0], connection=redis_db, serializer=OrjsonSerializer).get_status() == "started"

    endings = [
        Ending(Claim(ids[0], 0, f"{ids[0]}:t", 1), JobStatus.FINISHED, b'{"status":"finished"}'),
        Ending(
            Claim(ids[1], 0, f"{ids[1]}:t", 1, error=JobError(ErrorCode.INFERENCE_FAILED, "boom")),
            JobStatus.FAILED,
            b'{"status":"failed"}',
        ),
    ]
    assert publish_endings(redis_db, [QUEUE], endings, settings.result_ttl) == [True, True]
    assert started.count == 1  # RQ's own cleanup runs here and leaves the live lease alone
    assert FinishedJobRegistry(QUEUE, connection=redis_db).get_job_ids() == [ids[0]]
    assert FailedJobRegistry(QUEUE, connection=redis_db).get_job_ids() == [ids[1]]
    assert CanceledJobRegistry(QUEUE, connection=redis_db).get_job_ids() == [ids[3]]
    finished = Job.fetch(ids[0], connection=redis_db, serializer=OrjsonSerializer)
    assert finished.get_status() == "finished" and finished.ended_at is not None and finished.args == []
    assert Job.fetch(ids[1], connection=redis_db, serializer=OrjsonSerializer).get_status() == "failed"
    assert Job.fetch(ids[3], connection=redis_db, serializer=OrjsonSerializer).get_status() == "canceled"


def test_rq_info_counts_waiting_executing_finished_and_failed_jobs_of_a_run(redis_db, settings):
    jobs = RedisJobs(redis_db, settings)
    ids = [jobs.submit({"x": np.zeros((1, 2), dtype=np.float32)}) for _ in range(4)]
    claim_three(redis_db)
    endings = [
        Ending(Claim(ids[0], 0, f"{ids[0]}:t", 1), JobStatus.FINISHED, b"{}"),
        Ending(Claim(ids[1], 0, f"{ids[1]}:t", 1), JobStatus.FAILED, b"{}"),
    ]
    publish_endings(redis_db, [QUEUE], endings, settings.result_ttl)
    result = subprocess.run(
        [sys.executable, "-m", "rq.cli", "info", "--url", settings.redis_url, "--only-queues"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith(QUEUE + " "))
    assert line.split("|", 1)[1].lstrip("█ ") == "1, 1 executing, 1 finished, 1 failed", result.stdout
