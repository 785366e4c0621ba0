"""Claim queued RQ jobs in bulk and mark them started: the worker's side of the queue.

A claim is one Lua call that moves up to N job ids from the queues (in priority order) to each queue's
RQ intermediate list and returns their job hashes, so claiming many jobs costs one round trip. Marking
them started (RQ's `prepare_for_execution`, `Execution.create`, the started registry) is a second,
pipelined round trip. A job that is no longer queued (cancelled, expired) is dropped at claim time.

Queues after the first hold bulk chunks: a claim takes only as many of those as the rows it has room
for, and while the worker holds nothing but bulk rows it checks the first queue before each batch, so
interactive jobs overtake the bulk rows in hand.
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
from worker.chunks import ChunkStore
from worker.jobs import ClaimedJob

log = logging.getLogger(__name__)

# Lua's unpack() takes at most ~8,000 values; more jobs than this per claim gains nothing anyway.
MAX_JOBS_PER_CLAIM = 4096

# KEYS: queue, intermediate, queue, intermediate, ... (priority order). ARGV: max new ids, job key prefix,
# the most ids to take from each queue, then ids already moved by BLMOVE. Returns id1, hash1, id2, hash2, ...
CLAIM_SCRIPT = """
local want = tonumber(ARGV[1])
local prefix = ARGV[2]
local queues = #KEYS / 2
local ids = {}
for i = 3 + queues, #ARGV do ids[#ids + 1] = ARGV[i] end
for q = 1, queues do
  local take = math.min(want, tonumber(ARGV[2 + q]))
  if take > 0 then
    local got = redis.call('LRANGE', KEYS[2 * q - 1], 0, take - 1)
    if #got > 0 then
      redis.call('LTRIM', KEYS[2 * q - 1], #got, -1)
      redis.call('RPUSH', KEYS[2 * q], unpack(got))
      for _, id in ipairs(got) do ids[#ids + 1] = id end
      want = want - #got
    end
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
    """Implements `batcher.Source` over RQ queues; keeps the unfinished rows of claimed jobs between batches.

    `chunks` loads the rows of bulk chunk jobs from storage; `chunk_rows` (rows per job on the queues after
    the first) bounds how many of those one claim takes.
    """

    def __init__(self, connection: redis.Redis, queues: Sequence[Queue], worker: Worker, execution_ttl: int,
                 chunks: ChunkStore | None = None, chunk_rows: int = 1) -> None:
        self.connection = connection
        self.queues = list(queues)
        self.worker = worker
        self.execution_ttl = execution_ttl
        self.chunks = chunks
        self.chunk_rows = chunk_rows
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
        if self.claiming and self._holding_only_bulk():
            self._claim_new(max_rows, 0.0, priority_only=True)  # interactive jobs go ahead of bulk rows in hand
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

    def _holding_only_bulk(self) -> bool:
        first = self.queues[0].name
        return len(self.queues) > 1 and bool(self.pending) and all(c.job.origin != first for c in self.pending)

    def _claim_new(self, max_rows: int, timeout: float, priority_only: bool = False) -> None:
        """Claim jobs for up to `max_rows` rows, blocking up to `timeout` s on the first queue if all are empty.

        A job of the first queue counts as one row (it has at least one); a bulk chunk as `chunk_rows`.
        """
        max_jobs = min(max_rows, MAX_JOBS_PER_CLAIM)
        caps = [max_jobs] + [0 if priority_only else -(-max_rows // self.chunk_rows)] * (len(self.queues) - 1)
        prefix = Job.redis_job_namespace_prefix
        reply = self._claim(keys=self._keys, args=[max_jobs, prefix, *caps])
        trips = 1
        if not reply and timeout > 0:
            first = self.connection.blmove(self.queues[0].key, self.queues[0].intermediate_queue_key, timeout)
            if first is None:
                return
            reply = self._claim(keys=self._keys, args=[max_jobs - 1, prefix, *caps, first])
            trips = 3  # the empty claim, the blocking move, the claim of the rest
        if not reply:
            return
        ids = [raw.decode() for raw in reply[::2]]
        self._start(ids, [self._restore(job_id, flat) for job_id, flat in zip(ids, reply[1::2])], at_front=priority_only)
        self.round_trips += trips + 1

    def _restore(self, job_id: str, flat_hash: list[bytes]) -> ClaimedJob | None:
        data = dict(zip(flat_hash[::2], flat_hash[1::2]))
        if not data or data.get(b"status") != JobStatus.QUEUED.value.encode():
            return None  # cancelled or expired after it was queued: nothing to run, nothing to report
        job = Job(id=job_id, connection=self.connection, serializer=OrjsonSerializer)
        job.restore(data)
        claimed = ClaimedJob(job=job, execution=None, inputs=None, rows=0)
        try:
            if self.chunks is not None and self.chunks.is_chunk(job):
                claimed.chunk = dict(job.args[0])
                claimed.inputs = self.chunks.load(claimed.chunk)
            else:
                claimed.inputs = decode_inputs(job.args[0])
            claimed.rows = len(next(iter(claimed.inputs.values())))
        except Exception as exc:  # a foreign or corrupt payload (or a batch's deleted file) fails this job alone
            claimed.fail("invalid_payload", f"job payload could not be decoded: {exc}")
        return claimed

    def _start(self, ids: list[str], claimed: list[ClaimedJob | None], at_front: bool = False) -> None:
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
                if item.chunk is not None:
                    self.chunks.started(pipe, item)
            by_name = {q.name: q for q in self.queues}
            for job_id, item in zip(ids, claimed):
                origin = by_name.get(item.job.origin) if item is not None else None
                for queue in [origin] if origin else self.queues:
                    pipe.lrem(queue.intermediate_queue_key, 1, job_id)
            self.worker.set_state("busy", pipeline=pipe)
            pipe.execute()
        ready = [item for item in claimed if item is not None]
        self.rejected += [item for item in ready if item.error is not None]
        ready = [item for item in ready if item.error is None]
        if at_front:
            self.pending.extendleft(reversed(ready))
        else:
            self.pending.extend(ready)

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
