"""An idle worker's wait (RedisSource.claim): a BLMOVE on an interactive ring, but bulk lanes looked at within
BULK_LOOK_S, so a batch uploaded to an idle service starts without waiting out the whole idle wait."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from api.jobs.redis_jobs import RedisJobs
from shared import rq_keys
from shared.config import Settings
from worker.redis_source import RedisSource

pytestmark = pytest.mark.integration
LANES = ["predict", "predict-bulk"]
DEADLINE_S = 30.0  # far under the idle wait below: a worker that looked only at the interactive lane misses it


def test_an_idle_worker_notices_bulk_work_long_before_its_idle_wait_ends(redis_db):
    source = RedisSource(redis_db, LANES, "w", lease_s=60)
    assert source.take(8, 0.0) == []  # every lane empty: the next take waits
    taken: list = []
    waiter = threading.Thread(target=lambda: taken.extend(source.take(8, 120.0)), daemon=True)
    waiter.start()
    jobs = RedisJobs(redis_db, Settings.from_env({}))
    job_id = jobs.submit({"pixels": np.zeros((1, 64), np.float32)}, queue=LANES[1])
    waiter.join(DEADLINE_S)
    assert not waiter.is_alive(), "the idle worker did not look at the bulk lane within its wait"
    assert [(s.claim.id, s.bulk) for s in taken] == [(job_id, True)]


def _waiting_take(redis_db, source: RedisSource, taken: list) -> threading.Thread:
    """A take blocked in its wait (the lanes were found empty), which returns as soon as work comes."""
    assert source.take(8, 0.0) == []
    waiter = threading.Thread(target=lambda: taken.extend(source.take(8, 120.0)), daemon=True)
    waiter.start()
    deadline = time.monotonic() + DEADLINE_S
    while redis_db.info("clients")["blocked_clients"] < 1:
        assert time.monotonic() < deadline, "the take did not wait"
        time.sleep(0.01)
    return waiter


def test_a_job_that_comes_while_an_idle_worker_waits_is_claimed_in_the_waits_round_trip(redis_db):
    source = RedisSource(redis_db, LANES, "w", lease_s=60)
    taken: list = []
    waiter = _waiting_take(redis_db, source, taken)
    source.take_round_trips()
    submitted = time.time()
    job_id = RedisJobs(redis_db, Settings.from_env({})).submit({"pixels": np.zeros((1, 64), np.float32)})
    waiter.join(DEADLINE_S)
    assert [s.claim.id for s in taken] == [job_id]
    assert source.take_round_trips() == 1  # the claim went with the wait (BLMOVE), not after it
    # Its times were taken before the wait: the lease still runs lease_s from the claim, and the job is not
    # stamped started before it was enqueued.
    [(_, lease_until)] = redis_db.zrange(rq_keys.started(LANES[0]), 0, -1, withscores=True)
    assert lease_until >= submitted + 60
    enqueued, started = redis_db.hmget(rq_keys.job(job_id), rq_keys.JobField.ENQUEUED_AT, rq_keys.JobField.STARTED_AT)
    assert started >= enqueued


def test_a_claim_sent_with_the_wait_loads_its_script_when_redis_does_not_know_it(redis_db):
    source = RedisSource(redis_db, LANES, "w", lease_s=60)
    assert source.take(8, 0.0) == []  # the next take waits (sending the claim with its wait)
    job_id = RedisJobs(redis_db, Settings.from_env({})).submit({"pixels": np.zeros((1, 64), np.float32)})
    redis_db.script_flush()  # as after a restart of Redis
    assert [s.claim.id for s in source.take(8, 120.0)] == [job_id]
