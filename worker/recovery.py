"""RECOVERY: take back the jobs whose worker died, and purge the results past RESULT_TTL.

A worker keeps a lease on every job it holds: its member in RQ's started registry, scored with the time
it lapses, renewed at every heartbeat. A lapsed lease means its worker is gone (or cut off from Redis for
longer than the lease): shared/lua/recover.lua puts the job back at the head of its queue while it has
attempts left (RQ's `retries_left`, set at submit time) and fails it as `worker_lost` with a result for
the client when it has none. Taking a lease back and publishing under it both begin by removing the
lease in one Lua call, so exactly one of them acts: a job whose first worker was merely slow is
published once, by whoever gets there first.

The same pass purges ended jobs past RESULT_TTL, deleting their hashes (shared/lua/purge.lua), trims RQ's
ended-job registries to match, resets a drifted extra-rows counter of an empty queue, and puts a queue
with jobs pushed by RQ's own tools (not our submit) in its lane's ring (shared/fair.py).

Every worker runs this once per HEARTBEAT_S; a lock lets one of them do the work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from shared import fair, keys, lua, rq_keys, worker_metrics
from shared.batches import parse_chunk_job_id, utc_now
from shared.payload import ENDED_DATA
from shared.schema import ErrorCode, JobStatus
from shared.webhooks import delivery_id
from worker.chunks import ChunkFiles

log = logging.getLogger(__name__)

PURGE_PER_PASS = 1000  # most ended jobs purged per call of purge.lua (more wait for the next pass)


@dataclass
class SweepCounts:
    """What one pass did for one queue."""

    requeued: int = 0
    failed: int = 0


@dataclass(frozen=True)
class Recovered:
    """recover.lua's reply, decoded: jobs requeued, jobs failed, and which of those were chunk jobs."""

    requeued: int
    failed: int
    failed_chunks: list[str]

    @classmethod
    def decode(cls, reply: Sequence[Any]) -> Recovered:
        return cls(int(reply[0]), int(reply[1]), [raw.decode() for raw in reply[2:]])


def recover_leases(
    client: redis.Redis, queue_name: str, leases: Sequence[bytes], *, message: str, result_ttl: int
) -> Recovered:
    """recover.lua: requeue (to the job's own sub-queue of lane `queue_name`) or fail the jobs of lapsed
    `leases`."""
    now = time.time()
    reply = lua.script("recover", "webhook", "batch", "ring")(
        keys=[
            rq_keys.started(queue_name),
            keys.ring(queue_name),
            rq_keys.failed(queue_name),
            keys.purge_index(),
            keys.webhooks(),
        ],
        args=[
            now,
            rq_keys.timestamp(),
            utc_now(),
            now + result_ttl,
            result_ttl,
            keys.results_channel(),
            rq_keys.JOB_PREFIX,
            keys.batch(""),
            keys.webhook(""),
            message,
            ENDED_DATA,
            delivery_id("job", ""),
            delivery_id("batch", ""),
            queue_name,
            rq_keys.queue(""),
            keys.extra_rows(""),
            *leases,
        ],
        client=client,
    )
    return Recovered.decode(reply)


def purge_results(client: redis.Redis, most: int) -> int:
    """purge.lua: delete the hashes of ended jobs past RESULT_TTL; returns how many."""
    return int(
        lua.script("purge")(keys=[keys.purge_index()], args=[time.time(), rq_keys.JOB_PREFIX, most], client=client)
    )


def tidy_queue(client: redis.Redis, lane: str, queue_name: str) -> int:
    """tidy_queue.lua: zero the counter of an empty (sub-)queue of `lane` (1), or put one with jobs that is out
    of the lane's ring back in it (2); 0: nothing to do."""
    return int(
        lua.script("tidy_queue", "ring")(
            keys=[rq_keys.queue(queue_name), keys.extra_rows(queue_name), keys.ring(lane)],
            args=[queue_name],
            client=client,
        )
    )


class Recovery:
    """The periodic recovery step of the worker loop."""

    def __init__(
        self,
        connection: redis.Redis,
        queue_names: Sequence[str],
        worker_name: str,
        interval_s: float,
        result_ttl: int,
        max_attempts: int,
        chunks: ChunkFiles | None = None,
    ) -> None:
        self.connection = connection
        self.queue_names = list(queue_names)
        self.worker_name = worker_name
        self.interval_s = interval_s
        self.result_ttl = result_ttl
        self.max_attempts = max_attempts
        self.chunks = chunks  # to list the rows of a bulk chunk failed here
        self._next = 0.0

    def run_if_due(self) -> None:
        """Sweep every queue if this worker's turn has come and no other worker swept in the last interval."""
        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.interval_s
        # The lock is left to expire: the sweeps of all workers together run about once per interval.
        if not self.connection.set(keys.recovery_lock(), self.worker_name, nx=True, px=int(self.interval_s * 1000)):
            return
        for name in self.queue_names:
            counts = self.sweep(name)
            if counts.requeued or counts.failed:
                log.warning(
                    "queue %s: requeued %d job(s) whose worker died, failed %d that had no attempts left",
                    name,
                    counts.requeued,
                    counts.failed,
                )
        self.purge_results()

    def sweep(self, queue_name: str) -> SweepCounts:
        """One pass over one lane: lapsed leases, then each sub-queue (`tidy_queue`)."""
        lapsed = self.connection.zrangebyscore(rq_keys.started(queue_name), 0, time.time())
        for sub in fair.sub_queues(self.connection, queue_name):
            tidy_queue(self.connection, queue_name, sub)
        if not lapsed:
            return SweepCounts()
        message = (
            f"a worker died with this job in hand on each of its attempts (MAX_ATTEMPTS={self.max_attempts}); "
            "it is not tried again, in case it is what crashes them"
        )
        recovered = recover_leases(self.connection, queue_name, lapsed, message=message, result_ttl=self.result_ttl)
        failed = recovered.failed
        if failed:
            with self.connection.pipeline(transaction=False) as pipe:
                pipe.hincrbyfloat(keys.metrics(), worker_metrics.job_status_field(JobStatus.FAILED.value), failed)
                pipe.hincrbyfloat(keys.metrics(), worker_metrics.job_error_field(ErrorCode.WORKER_LOST.value), failed)
                pipe.execute()
        for job_id in recovered.failed_chunks:
            log.warning("chunk job %s failed: %s", job_id, message)
            if self.chunks is not None:
                self.chunks.lost(*parse_chunk_job_id(job_id), message)
        return SweepCounts(recovered.requeued, failed)

    def purge_results(self) -> None:
        """Purge results past RESULT_TTL, and trim RQ's ended-job registries (scored by when that is) to match."""
        deleted = purge_results(self.connection, PURGE_PER_PASS)
        now = time.time()
        with self.connection.pipeline(transaction=False) as pipe:
            for name in self.queue_names:
                for registry in (rq_keys.finished(name), rq_keys.failed(name), rq_keys.canceled(name)):
                    pipe.zremrangebyscore(registry, 0, now)
            pipe.execute()
        if deleted:
            log.debug("purged %d result(s) past RESULT_TTL", deleted)
