"""Chunks that failed on storage wait before their next attempt, so that a store outage spends a chunk's
attempts (MAX_ATTEMPTS) over STORAGE_RETRY_S, doubled after each, instead of within a second.

A waiting chunk sits in RQ's scheduled registry of its queue (status `scheduled`, one attempt fewer,
shared/lua/retry_later.lua); the background thread of any worker puts it back at the head of its queue
once due (shared/lua/release.lua), or marks it canceled if its batch ended meanwhile.
"""

from __future__ import annotations

import time

import redis

from shared import keys, lua, rq_keys
from worker.claim import Claim

CANCELED_TTL_S = 3600  # how long the hash of a chunk cancelled here stays readable, like a result


def retry_delay_s(base_s: float, max_attempts: int, retries_left: int) -> float:
    """Seconds before the next attempt: `base_s` after the first failure, doubling after each one."""
    failures = max(1, max_attempts - retries_left)
    return base_s * 2 ** (failures - 1)


def schedule_retry(connection: redis.Redis, queue_name: str, claim: Claim, delay_s: float) -> bool:
    """retry_later.lua: end the claim and schedule the chunk's next attempt; False if the lease was lost."""
    return bool(
        lua.script("retry_later")(
            keys=[rq_keys.started(queue_name), rq_keys.scheduled(queue_name), rq_keys.job(claim.id)],
            args=[claim.lease, claim.id, time.time() + delay_s],
            client=connection,
        )
    )


def release_due(connection: redis.Redis, queue_name: str) -> int:
    """release.lua: put every chunk whose wait is over back at the head of its sub-queue of lane `queue_name`;
    returns how many."""
    return int(
        lua.script("release", "ring")(
            keys=[rq_keys.scheduled(queue_name), keys.ring(queue_name)],
            args=[
                time.time(),
                rq_keys.JOB_PREFIX,
                keys.batch(""),
                CANCELED_TTL_S,
                queue_name,
                rq_keys.queue(""),
                keys.extra_rows(""),
            ],
            client=connection,
        )
    )
