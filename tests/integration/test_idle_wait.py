"""An idle worker's wait (RedisSource): one BLPOP of every lane's ring, so it wakes for work in any lane."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from api.jobs.redis_jobs import RedisJobs
from shared import keys
from shared.config import Settings
from worker.redis_source import RedisSource

pytestmark = pytest.mark.integration
LANES = ["predict", "predict-bulk"]
DEADLINE_S = 30.0  # far under the wait below: a worker that only waited on the interactive lane misses it


def test_an_idle_worker_waiting_on_every_lane_wakes_for_bulk_work_at_once(redis_db):
    source = RedisSource(redis_db, LANES, "w", lease_s=60)
    assert source.take(8, 0.0) == []  # every lane empty: the next take waits
    taken: list = []
    waiter = threading.Thread(target=lambda: taken.extend(source.take(8, 120.0)), daemon=True)
    waiter.start()
    jobs = RedisJobs(redis_db, Settings.from_env({}))
    job_id = jobs.submit({"pixels": np.zeros((1, 64), np.float32)}, queue=LANES[1])
    waiter.join(DEADLINE_S)
    assert not waiter.is_alive(), "the idle worker did not wake for work in the bulk lane"
    assert [(s.claim.id, s.bulk) for s in taken] == [(job_id, True)]
    assert redis_db.llen(keys.ring(LANES[1])) == 0  # taken out by the wait, put back, emptied by the claim
