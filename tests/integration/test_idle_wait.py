"""An idle worker's wait (RedisSource.claim): a BLMOVE on an interactive ring, but bulk lanes looked at within
BULK_LOOK_S, so a batch uploaded to an idle service starts without waiting out the whole idle wait."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from api.jobs.redis_jobs import RedisJobs
from shared.config import Settings
from worker import redis_source
from worker.redis_source import BULK_LOOK_S, RedisSource

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


class SteppedClock:
    """`time` for worker.redis_source with a monotonic clock the test moves (the rest is the real module's)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def __getattr__(self, name: str):
        return getattr(time, name)


def test_a_busy_worker_looks_at_bulk_lanes_found_empty_again_after_bulk_look_s_not_on_every_claim(
    redis_db, monkeypatch
):
    clock = SteppedClock()
    monkeypatch.setattr(redis_source, "time", clock)
    source = RedisSource(redis_db, LANES, "w", lease_s=60)
    jobs = RedisJobs(redis_db, Settings.from_env({}))
    row = {"pixels": np.zeros((1, 64), np.float32)}

    def claimed() -> list[tuple[str, bool]]:
        before = len(source.pending)
        source.claim(8, 0.0)
        return [(c.id, source.lanes[c.queue_index].bulk) for c in list(source.pending)[before:]]

    first = jobs.submit(row)
    assert claimed() == [(first, False)]  # the bulk lane was looked at too, and found empty
    chunk, second = jobs.submit(row, queue=LANES[1]), jobs.submit(row)
    redis_db.config_resetstat()
    assert claimed() == [(second, False)]  # within BULK_LOOK_S of that: the bulk lane is not looked at
    assert redis_db.info("commandstats")["cmdstat_lpop"]["calls"] == 2  # the interactive ring and sub-queue
    clock.now += BULK_LOOK_S
    assert claimed() == [(chunk, True)]
    third, more = jobs.submit(row), jobs.submit(row, queue=LANES[1])
    assert claimed() == [(third, False), (more, True)]  # a bulk lane that had work: looked at on every claim
