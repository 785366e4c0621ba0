"""MAINTENANCE: find the jobs that dead workers held, and queue them again (or fail them, after MAX_ATTEMPTS).

A worker keeps a lease on every job it holds: its entry in RQ's started registry, which expires unless
the worker's heartbeat renews it. RQ's own cleanup fails a job whose lease expired; ours requeues it at
the front of its queue while the job has attempts left (RQ's `retries_left`, set at submit time), and
fails it as `worker_lost` with a document for the client when it has none. Requeue and publish are
mutually exclusive: both WATCH the job's hash and act only if the lease is still in the registry, so a
job whose first worker was merely slow is published once, by whoever gets there first.

A claimed job can also be stranded before it has a lease, in RQ's intermediate list, if its worker died
between the claim and marking the job started (one round trip later). An id still there on two passes in
a row goes back to the head of its queue.

Every worker runs this step once per HEARTBEAT_S; a lock lets one of them do the work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import redis
from redis.exceptions import WatchError
from rq import Queue, Worker
from rq.executions import Execution, ExecutionRegistry
from rq.job import Job, JobStatus
from rq.job_lifecycle import record_job_failure
from rq.utils import current_timestamp, now, parse_composite_key

from shared import keys
from shared.batch_records import BatchRecords
from shared.batches import CHUNK_FUNC, ChunkSpec
from shared.schema import ErrorCode, JobError, OrjsonSerializer, error_doc

log = logging.getLogger(__name__)

# KEYS: queue, queued-rows counter. The counter moves with the queue list in the same transaction or Lua
# call; this catches any drift (RQ's own tools emptying a queue, say) whenever the queue is empty.
RESET_ROWS_SCRIPT = """
local rows = redis.call('GET', KEYS[2])
if rows and rows ~= '0' and redis.call('LLEN', KEYS[1]) == 0 then redis.call('SET', KEYS[2], 0) end
"""

# KEYS: intermediate list, queue, job hash, queued-rows counter. ARGV: job id, rows field, queued status.
# A stranded claim goes back to its queue only if nobody marked it started meanwhile.
RETURN_SCRIPT = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[3], 'status') ~= ARGV[3] then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[1])
local rows = tonumber(redis.call('HGET', KEYS[3], ARGV[2]) or '0') or 0
if rows ~= 0 then redis.call('INCRBY', KEYS[4], rows) end
return 1
"""


@dataclass
class SweepCounts:
    """What one pass did for one queue."""

    requeued: int = 0
    failed: int = 0
    returned: int = 0


class Recovery:
    """The periodic recovery step of the worker loop."""

    def __init__(self, connection: redis.Redis, queues: Sequence[Queue], worker: Worker, interval_s: float,
                 result_ttl: int, max_attempts: int, records: BatchRecords | None = None) -> None:
        self.connection = connection
        self.records = records  # to end the chunk of a bulk batch that is failed here
        self.queues = list(queues)
        self.worker = worker
        self.interval_s = interval_s
        self.result_ttl = result_ttl
        self.max_attempts = max_attempts
        self._next = 0.0

    def run_if_due(self) -> None:
        """Sweep every queue if this worker's turn has come and no other worker swept in the last interval."""
        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.interval_s
        # The lock is left to expire: the sweeps of all workers together run about once per interval.
        if not self.connection.set(keys.recovery_lock(), self.worker.name, nx=True, px=int(self.interval_s * 1000)):
            return
        for queue in self.queues:
            counts = self.sweep(queue)
            if counts.requeued or counts.failed or counts.returned:
                log.warning("queue %s: requeued %d job(s) whose worker died, failed %d that had no attempts left, "
                            "returned %d stranded claim(s)", queue.name, counts.requeued, counts.failed, counts.returned)

    def sweep(self, queue: Queue) -> SweepCounts:
        """One pass over one queue: expired leases, stranded claims, the queued-rows counter."""
        counts = SweepCounts()
        seen_key = keys.intermediate_seen(queue.name)
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(queue.started_job_registry.key, 0, current_timestamp())
            pipe.lrange(queue.intermediate_queue_key, 0, -1)
            pipe.get(seen_key)
            pipe.eval(RESET_ROWS_SCRIPT, 2, queue.key, keys.queued_rows(queue.name))
            expired, claimed, seen, _ = pipe.execute()
        for lease in expired:
            outcome = self._recover(queue, lease.decode())
            if outcome == "requeued":
                counts.requeued += 1
            elif outcome == "failed":
                counts.failed += 1
        claimed_ids = [raw.decode() for raw in claimed]
        stale = set(claimed_ids) & set(orjson.loads(seen or b"[]"))
        for job_id in stale:
            counts.returned += self._return(queue, job_id)
        remember = [job_id for job_id in claimed_ids if job_id not in stale]
        if remember:
            self.connection.set(seen_key, orjson.dumps(remember), ex=max(10, int(10 * self.interval_s)))
        elif seen is not None:
            self.connection.delete(seen_key)
        return counts

    def _return(self, queue: Queue, job_id: str) -> int:
        return int(self.connection.eval(
            RETURN_SCRIPT, 4, queue.intermediate_queue_key, queue.key, Job.key_for(job_id), keys.queued_rows(queue.name),
            job_id, keys.JOB_ROWS, JobStatus.QUEUED.value,
        ))

    def _recover(self, queue: Queue, lease: str) -> str:
        """Requeue or fail the job of one expired lease; returns what happened ("" if nothing)."""
        job_id, _ = parse_composite_key(lease)
        job_key = Job.key_for(job_id)
        registry = queue.started_job_registry
        with self.connection.pipeline() as pipe:
            try:
                pipe.watch(job_key)
                score = pipe.zscore(registry.key, lease)
                if score is None or score > current_timestamp():
                    return ""  # published, renewed or recovered since we looked
                data = pipe.hgetall(job_key)
                pipe.multi()
                execution = Execution.from_composite_key(lease, self.connection)
                pipe.delete(execution.key)
                registry.remove_execution(execution, pipeline=pipe)
                ExecutionRegistry(job_id, self.connection).remove(execution, pipeline=pipe)
                outcome = ""
                if data.get(b"status") == JobStatus.STARTED.value.encode():
                    outcome = self._requeue_or_fail(pipe, queue, job_id, data)
                pipe.execute()
                return outcome
            except WatchError:
                return ""  # the job moved on (its worker published, or another sweep got it): leave it

    def _requeue_or_fail(self, pipe: redis.client.Pipeline, queue: Queue, job_id: str, data: dict) -> str:
        job = Job(id=job_id, connection=self.connection, serializer=OrjsonSerializer)
        job.restore(data)
        if job.retries_left:
            job.retry(queue, pipe)  # RQ's own: one attempt fewer, back in the queue (at the front)
            pipe.incrby(keys.queued_rows(queue.name), int(data.get(keys.JOB_ROWS.encode()) or 0))
            return "requeued"
        message = (f"a worker died with this job in hand on each of its attempts (MAX_ATTEMPTS={self.max_attempts}); "
                   "it is not tried again, in case it is what crashes them")
        job.ended_at = now()
        record_job_failure(job, message, pipe)
        if self.records is not None and job.func_name == CHUNK_FUNC:
            # A bulk chunk: its rows count as failed so that the batch still ends.
            chunk = ChunkSpec.from_payload(job.args[0])
            self.records.chunk_done(pipe, chunk.batch, 0, chunk.rows)
        doc = orjson.dumps(error_doc(job_id, JobError(ErrorCode.WORKER_LOST, message)))
        pipe.rpush(keys.result(job_id), doc)
        pipe.expire(keys.result(job_id), self.result_ttl)
        log.warning("job %s failed: %s", job_id, message)
        return "failed"
