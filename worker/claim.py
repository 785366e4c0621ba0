"""Claim queued RQ jobs in bulk and mark them started: the worker's side of the queue.

A claim is one Lua call that moves up to N job ids from the queues (in priority order) to each queue's
RQ intermediate list and returns their job hashes, so claiming many jobs costs one round trip. Marking
them started (RQ's `prepare_for_execution`, `Execution.create`, the started registry) is a second,
pipelined round trip. A job that is no longer queued (cancelled, expired) is dropped at claim time.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence

import redis
from rq import Queue, Worker
from rq.executions import Execution
from rq.job import Job, JobStatus

from shared.payload import decode_inputs
from shared.schema import OrjsonSerializer
from worker.batcher import Segment
from worker.jobs import ClaimedJob

log = logging.getLogger(__name__)

# Lua's unpack() takes at most ~8,000 values; more jobs than this per claim gains nothing anyway.
MAX_JOBS_PER_CLAIM = 4096

# KEYS: queue, intermediate, queue, intermediate, ... (priority order). ARGV: max new ids, job key prefix,
# then ids already moved by BLMOVE. Returns id1, hash1, id2, hash2, ...
CLAIM_SCRIPT = """
local want = tonumber(ARGV[1])
local prefix = ARGV[2]
local ids = {}
for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
for k = 1, #KEYS, 2 do
  if want <= 0 then break end
  local got = redis.call('LRANGE', KEYS[k], 0, want - 1)
  if #got > 0 then
    redis.call('LTRIM', KEYS[k], #got, -1)
    redis.call('RPUSH', KEYS[k + 1], unpack(got))
    for _, id in ipairs(got) do ids[#ids + 1] = id end
    want = want - #got
  end
end
local out = {}
for _, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGETALL', prefix .. id)
end
return out
"""


class RedisSource:
    """Implements `batcher.Source` over RQ queues; keeps the unfinished rows of claimed jobs between batches."""

    def __init__(self, connection: redis.Redis, queues: Sequence[Queue], worker: Worker, execution_ttl: int) -> None:
        self.connection = connection
        self.queues = list(queues)
        self.worker = worker
        self.execution_ttl = execution_ttl
        self.pending: deque[ClaimedJob] = deque()
        self.rejected: list[ClaimedJob] = []
        self._claim = connection.register_script(CLAIM_SCRIPT)
        self._keys: list[str] = []
        for q in self.queues:
            self._keys += [q.key, q.intermediate_queue_key]
        self.claiming = True
        # Round trips spent on claims that got work, since the last `take_round_trips()`.
        self.round_trips = 0

    def take(self, max_rows: int, timeout: float) -> list[Segment]:
        """See `batcher.Source.take`: pending rows first, then new claims (none once claiming stopped)."""
        segments = self._from_pending(max_rows)
        room = max_rows - sum(s.rows for s in segments)
        if room > 0 and self.claiming:
            self._claim_new(room, timeout if not segments else 0.0)
            segments += self._from_pending(room)
        return segments

    def stop_claiming(self) -> None:
        """Finish what is in hand, take nothing new."""
        self.claiming = False

    def _from_pending(self, max_rows: int) -> list[Segment]:
        segments: list[Segment] = []
        for claimed in self.pending:
            if max_rows <= 0:
                break
            start = claimed.next_row
            stop = min(claimed.rows, start + max_rows)
            if stop > start:
                segments.append(Segment(claimed, start, stop))
                claimed.next_row = stop
                max_rows -= stop - start
        return segments

    def _claim_new(self, max_jobs: int, timeout: float) -> None:
        """Claim up to `max_jobs` jobs, blocking up to `timeout` s on the first queue if all are empty."""
        max_jobs = min(max_jobs, MAX_JOBS_PER_CLAIM)
        reply = self._claim(keys=self._keys, args=[max_jobs, Job.redis_job_namespace_prefix])
        trips = 1
        if not reply and timeout > 0:
            first = self.connection.blmove(self.queues[0].key, self.queues[0].intermediate_queue_key, timeout)
            if first is None:
                return
            reply = self._claim(keys=self._keys, args=[max_jobs - 1, Job.redis_job_namespace_prefix, first])
            trips = 3  # the empty claim, the blocking move, the claim of the rest
        if not reply:
            return
        ids = [raw.decode() for raw in reply[::2]]
        self._start(ids, [self._restore(job_id, flat) for job_id, flat in zip(ids, reply[1::2])])
        self.round_trips += trips + 1

    def _restore(self, job_id: str, flat_hash: list[bytes]) -> ClaimedJob | None:
        data = dict(zip(flat_hash[::2], flat_hash[1::2]))
        if not data or data.get(b"status") != JobStatus.QUEUED.value.encode():
            return None  # cancelled or expired after it was queued: nothing to run, nothing to report
        job = Job(id=job_id, connection=self.connection, serializer=OrjsonSerializer)
        job.restore(data)
        claimed = ClaimedJob(job=job, execution=None, inputs=None, rows=0)
        try:
            claimed.inputs = decode_inputs(job.args[0])
            claimed.rows = len(next(iter(claimed.inputs.values())))
        except Exception as exc:  # a foreign or corrupt payload fails this job alone
            claimed.fail("invalid_payload", f"job payload could not be decoded: {exc}")
        return claimed

    def _start(self, ids: list[str], claimed: list[ClaimedJob | None]) -> None:
        """Mark claimed jobs started in one round trip and take every claimed id off the intermediate lists."""
        if not ids:
            return
        with self.connection.pipeline(transaction=False) as pipe:
            for item in claimed:
                if item is None:
                    continue
                job = item.job
                # Also sets last_heartbeat; queued jobs carry no TTL, so RQ's PERSIST is not needed.
                job.prepare_for_execution(self.worker.name, pipeline=pipe)
                item.execution = Execution.create(job, self.execution_ttl, pipeline=pipe, worker_name=self.worker.name)
            by_name = {q.name: q for q in self.queues}
            for job_id, item in zip(ids, claimed):
                origin = by_name.get(item.job.origin) if item is not None else None
                for queue in [origin] if origin else self.queues:
                    pipe.lrem(queue.intermediate_queue_key, 1, job_id)
            self.worker.set_state("busy", pipeline=pipe)
            pipe.execute()
        for item in claimed:
            if item is None:
                continue
            (self.rejected if item.error is not None else self.pending).append(item)

    def take_finished(self) -> list[ClaimedJob]:
        """Remove and return the jobs that are complete (all rows done, or failed)."""
        done = self.rejected + [c for c in self.pending if c.complete]
        self.rejected = []
        self.pending = deque(c for c in self.pending if not c.complete)
        return done

    def take_round_trips(self) -> int:
        """Round trips spent claiming since the last call (for the worker's stats)."""
        trips, self.round_trips = self.round_trips, 0
        return trips

    @property
    def idle(self) -> bool:
        """Nothing in hand."""
        return not self.pending and not self.rejected
