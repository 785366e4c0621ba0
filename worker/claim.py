"""Claim queued RQ jobs in bulk and mark them started: the worker's side of the queue.

A claim is one Lua call that moves up to N job ids from the queues (in priority order) to each queue's
RQ intermediate list and returns their job hashes, so claiming many jobs costs one round trip. Marking
them started (RQ's `prepare_for_execution`, `Execution.create`, the started registry) is a second,
pipelined round trip. A job that is no longer queued (cancelled, expired) is dropped at claim time; one
whose deadline has passed is failed as `expired` without running.

Queues after the first hold bulk chunks: a claim takes only as many of those as the rows it has room
for, and while the worker holds nothing but bulk rows it checks the first queue before each batch, so
interactive jobs overtake the bulk rows in hand.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence

import redis
from rq import Queue, Worker
from rq.executions import Execution
from rq.job import Job, JobStatus

from shared import keys
from shared.batches import ChunkSpec
from shared.payload import decode_inputs
from shared.schema import ErrorCode, OrjsonSerializer
from worker.microbatcher import Segment
from worker.chunks import ChunkStore
from worker.claims import Claim

log = logging.getLogger(__name__)

# Lua's unpack() takes at most ~8,000 values; more jobs than this per claim gains nothing anyway.
MAX_JOBS_PER_CLAIM = 4096

# KEYS, per queue in priority order: the queue, its RQ intermediate list, its queued-rows counter.
# ARGV: [1] most new ids to take, [2] job key prefix, [3] rows field, [4] "1" if the worker holds unfinished
# jobs, [5..4+Q] the most ids to take from each of the Q queues, then ids that BLMOVE already moved from the
# first queue. Returns id1, hash1, id2, hash2, ...
#
# A job with a `started_at` was started before and is queued again because its worker died: it may be
# what killed it. Such a job is claimed only alone, by a worker holding nothing, so that if it kills this
# worker too it takes no batch-mates down with it (they would be charged an attempt each). One that BLMOVE
# handed to a busy worker goes back to the head of its queue.
CLAIM_SCRIPT = """
local want = tonumber(ARGV[1])
local prefix = ARGV[2]
local rows_field = ARGV[3]
local busy = ARGV[4] == '1'
local queues = #KEYS / 3
local ids = {}
local alone = false
local function rerun(id)
  local started = redis.call('HGET', prefix .. id, 'started_at')
  return started and started ~= ''
end
local function rows(id)
  return tonumber(redis.call('HGET', prefix .. id, rows_field) or '0') or 0
end
local function taken(counter, n)
  if n ~= 0 and redis.call('DECRBY', counter, n) < 0 then redis.call('SET', counter, 0) end
end
for i = 5 + queues, #ARGV do
  local id = ARGV[i]
  if busy and rerun(id) then
    redis.call('LREM', KEYS[2], 1, id)
    redis.call('LPUSH', KEYS[1], id)
  else
    ids[#ids + 1] = id
    taken(KEYS[3], rows(id))
    alone = alone or rerun(id)
  end
end
for k = 1, #KEYS, 3 do
  if want <= 0 or alone then break end
  local cap = math.min(want, tonumber(ARGV[5 + (k - 1) / 3]))
  local got = cap > 0 and redis.call('LRANGE', KEYS[k], 0, cap - 1) or {}
  local take, n = 0, 0
  for i, id in ipairs(got) do
    if rerun(id) then
      if not busy and #ids == 0 and take == 0 then take, n, alone = 1, rows(id), true end
      break
    end
    take, n = i, n + rows(id)
  end
  if take > 0 then
    redis.call('LTRIM', KEYS[k], take, -1)
    redis.call('RPUSH', KEYS[k + 1], unpack(got, 1, take))
    for i = 1, take do ids[#ids + 1] = got[i] end
    taken(KEYS[k + 2], n)
    want = want - take
  end
  if take < #got then break end
end
local out = {}
for _, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGETALL', prefix .. id)
end
return out
"""


def _deadline(job_hash: dict[bytes, bytes]) -> float:
    """The job's deadline (Unix time); +inf when it has none, or none that parses."""
    try:
        return float(job_hash.get(keys.JOB_DEADLINE.encode()) or "inf")
    except ValueError:
        return float("inf")


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
        self.pending: deque[Claim] = deque()
        self.rejected: list[Claim] = []
        self._claim = connection.register_script(CLAIM_SCRIPT)
        self._keys: list[str] = []
        for q in self.queues:
            self._keys += [q.key, q.intermediate_queue_key, keys.queued_rows(q.name)]
        self.claiming = True
        # Round trips spent on claims that got work, since the last `take_round_trips()`.
        self.round_trips = 0

    def take(self, max_rows: int, timeout: float) -> list[Segment]:
        """See `batcher.Source.take`: pending rows first, then new claims (none once claiming stopped).

        While the worker holds a job that runs alone, it claims nothing else.
        """
        if self.claiming and self._holding_only_bulk() and not any(c.rerun for c in self.pending):
            self._claim_new(max_rows, 0.0, priority_only=True)  # interactive jobs go ahead of bulk rows in hand
        segments = self._from_pending(max_rows)
        room = max_rows - sum(s.rows for s in segments)
        if room > 0 and self.claiming and not any(c.rerun for c in self.pending):
            self._claim_new(room, timeout if not segments else 0.0)
            segments += self._from_pending(room)
        return segments

    def stop_claiming(self) -> None:
        """Finish what is in hand, take nothing new."""
        self.claiming = False

    def rewind(self) -> None:
        """Hand out again the rows of a batch that was collected but never ran (a step failed part-way)."""
        for claimed in self.pending:
            claimed.next_row = claimed.done_rows

    def _from_pending(self, max_rows: int) -> list[Segment]:
        segments: list[Segment] = []
        for claimed in self.pending:
            if max_rows <= 0:
                break
            start = claimed.next_row
            stop = min(claimed.rows, start + max_rows)
            if stop > start:
                segments.append(Segment(claimed, start, stop, rerun=claimed.rerun))
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
        args = [max_jobs, Job.redis_job_namespace_prefix, keys.JOB_ROWS, int(bool(self.pending)), *caps]
        reply = self._claim(keys=self._keys, args=args)
        trips = 1
        if not reply and timeout > 0:
            started = time.monotonic()
            first = self.connection.blmove(self.queues[0].key, self.queues[0].intermediate_queue_key, timeout)
            if first is None:
                return
            args[0] = max_jobs - 1
            reply = self._claim(keys=self._keys, args=[*args, first])
            trips = 3  # the empty claim, the blocking move, the claim of the rest
            if not reply:
                # `first` must run alone and this worker holds other jobs: it went back to the head of the
                # queue. Wait out the window rather than take it again at once.
                time.sleep(max(0.0, timeout - (time.monotonic() - started)))
                return
        if not reply:
            return
        ids = [raw.decode() for raw in reply[::2]]
        self._start(ids, [self._restore(job_id, flat) for job_id, flat in zip(ids, reply[1::2])], at_front=priority_only)
        self.round_trips += trips + 1

    def _restore(self, job_id: str, flat_hash: list[bytes]) -> Claim | None:
        data = dict(zip(flat_hash[::2], flat_hash[1::2]))
        if not data or data.get(b"status") != JobStatus.QUEUED.value.encode():
            return None  # cancelled, expired or already done (a duplicate id): nothing to run, nothing to report
        job = Job(id=job_id, connection=self.connection, serializer=OrjsonSerializer)
        job.restore(data)
        claimed = Claim(job=job, execution=None, inputs=None, rows=0, rerun=bool(data.get(b"started_at")))
        late = time.time() - _deadline(data)
        if late > 0:  # never run a job past its deadline: the client has stopped waiting for it
            claimed.fail(ErrorCode.DEADLINE_EXCEEDED, f"the job's deadline passed {late:.1f} s before a worker could start it")
            return claimed
        try:
            if self.chunks is not None and self.chunks.is_chunk(job):
                claimed.chunk = ChunkSpec.from_payload(job.args[0])
                claimed.inputs = self.chunks.load(claimed.chunk)
            else:
                claimed.inputs = decode_inputs(job.args[0])
            claimed.rows = len(next(iter(claimed.inputs.values())))
        except Exception as exc:  # a foreign or corrupt payload (or a batch's deleted file) fails this job alone
            claimed.fail(ErrorCode.INVALID_PAYLOAD, f"job payload could not be decoded: {exc}")
        return claimed

    def _start(self, ids: list[str], claimed: list[Claim | None], at_front: bool = False) -> None:
        """Mark claimed jobs started in one round trip and take every claimed id off the intermediate lists."""
        if not ids:
            return
        claimed = self._without_duplicates(claimed)
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

    def _without_duplicates(self, claimed: list[Claim | None]) -> list[Claim | None]:
        """Drop repeated ids within one claim; a job claimed again replaces the stale copy in hand.

        An id is queued twice only after a retried submit or requeue; a job we hold that comes back was
        requeued because our lease on it lapsed, so the copy in hand can no longer publish anyway.
        """
        seen: set[str] = set()
        unique: list[Claim | None] = []
        for item in claimed:
            if item is None or item.id in seen:
                unique.append(None)
                continue
            seen.add(item.id)
            unique.append(item)
        if seen & {c.id for c in self.pending}:
            self.pending = deque(c for c in self.pending if c.id not in seen)
        return unique

    def take_finished(self) -> list[Claim]:
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
