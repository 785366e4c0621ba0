"""An idle worker's wait (RedisSource.claim): a BLMOVE on an interactive ring, but bulk lanes looked at within
BULK_LOOK_S, so a batch uploaded to an idle service starts without waiting out the whole idle wait."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from api.jobs.redis_jobs import RedisJobs
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
