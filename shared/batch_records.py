"""A batch's record in Redis and every change to it, for the API (create, read, cancel) and the workers
(chunk started, chunk done, expiry).

Redis work per batch is constant per chunk, never per row: one small script call when a chunk starts and
one when it ends, each inside the pipeline that does the chunk's RQ bookkeeping. Whoever moves a batch to
an end state (the last chunk's worker, a cancel, the expiry sweep) adds its webhook delivery in the same
script, so the two cannot disagree.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
import redis
from rq import Queue
from rq.job import Job, Retry

from shared import keys
from shared.batches import CHUNK_FUNC, BatchStatus, ChunkSpec, chunk_job_id, chunk_job_prefix, chunk_ranges, chunk_size, utc_now
from shared.config import Settings
from shared.errors import NotFound
from shared.schema import OrjsonSerializer
from shared.webhooks import delivery_id

# The webhook writes of `webhooks.enqueue`, in Lua. KEYS[2]: deliveries set, KEYS[3]: delivery hash.
_WEBHOOK_LUA = """
local url = redis.call('HGET', KEYS[1], 'callback_url')
if url and url ~= '' then
  redis.call('HSET', KEYS[3], 'url', url, 'attempts', 0)
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[WEBHOOK_TTL]))
  redis.call('ZADD', KEYS[2], ARGV[NOW_TS], ARGV[MEMBER])
end
"""

# KEYS: batch. ARGV: now (ISO). The first chunk a worker starts moves the batch to in_progress.
STARTED_SCRIPT = """
if redis.call('HGET', KEYS[1], 'status') == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'in_progress', 'started_at', ARGV[1])
end
"""

# KEYS: batch, deliveries, delivery. ARGV: done rows, failed rows, now (ISO), now (Unix), member, webhook ttl.
# Returns 0 for an unknown batch, 1 for a counted chunk, 2 when this chunk ended the batch.
DONE_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'done_rows', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'failed_rows', ARGV[2])
local left = redis.call('HINCRBY', KEYS[1], 'chunks_left', -1)
local status = redis.call('HGET', KEYS[1], 'status')
if left > 0 or (status ~= 'queued' and status ~= 'in_progress') then return 1 end
local final = 'completed'
if tonumber(redis.call('HGET', KEYS[1], 'done_rows')) == 0 then final = 'failed' end
redis.call('HSETNX', KEYS[1], 'started_at', ARGV[3])
redis.call('HSET', KEYS[1], 'status', final, 'finished_at', ARGV[3])
""" + _WEBHOOK_LUA.replace("WEBHOOK_TTL", "6").replace("NOW_TS", "4").replace("MEMBER", "5") + """
return 2
"""

# KEYS: batch, deliveries, delivery. ARGV: new status (cancelled|expired), now (ISO), now (Unix), member,
# webhook ttl, chunk job key prefix, ttl for cancelled chunk jobs. Chunks still queued are marked canceled,
# so a worker drops them when it claims them. Returns the number of chunks cancelled; -1: unknown batch;
# -2: the batch had already ended (an expiry still marks it expired).
END_SCRIPT = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if status ~= 'validating' and status ~= 'queued' and status ~= 'in_progress' then
  if ARGV[1] == 'expired' then redis.call('HSET', KEYS[1], 'status', 'expired') end
  return -2
end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'finished_at', ARGV[2])
local cancelled = 0
local chunks = tonumber(redis.call('HGET', KEYS[1], 'chunks_total') or '0')
for i = 0, chunks - 1 do
  local job = ARGV[6] .. i
  if redis.call('HGET', job, 'status') == 'queued' then
    redis.call('HSET', job, 'status', 'canceled')
    redis.call('EXPIRE', job, tonumber(ARGV[7]))
    cancelled = cancelled + 1
  end
end
""" + _WEBHOOK_LUA.replace("WEBHOOK_TTL", "5").replace("NOW_TS", "3").replace("MEMBER", "4") + """
return cancelled
"""


@dataclass
class StoredUpload:
    """What a validated upload produced: rows in the file, rows accepted, and how they are stored."""

    total_rows: int
    accepted_rows: int
    input_names: list[str]


class BatchRecords:
    """Redis operations on batch records; one instance per process."""

    def __init__(self, connection: redis.Redis, settings: Settings) -> None:
        self.connection = connection
        self.settings = settings
        self.queue = Queue(settings.bulk_queue_name, connection=connection, serializer=OrjsonSerializer)
        self._started = connection.register_script(STARTED_SCRIPT)
        self._done = connection.register_script(DONE_SCRIPT)
        self._end = connection.register_script(END_SCRIPT)

    def begin(self, batch_id: str, callback_url: str | None, metadata: Any, owner: str = "") -> None:
        """Create the record (status validating) and schedule its expiry, before the upload is read.

        `owner` is the creating API key's fingerprint (api.auth), "" when keys are off.
        """
        ttl = self.settings.batch_ttl
        expires = time.time() + ttl
        record = {
            "status": BatchStatus.VALIDATING.value,
            "created_at": utc_now(),
            "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
            "callback_url": callback_url or "",
            "metadata": orjson.dumps(metadata) if metadata is not None else "",
            "owner": owner,
        }
        with self.connection.pipeline() as pipe:
            pipe.hset(keys.batch(batch_id), mapping=record)
            pipe.expire(keys.batch(batch_id), 2 * ttl)
            pipe.zadd(keys.batch_expiry(), {batch_id: expires})
            pipe.execute()

    def enqueue(self, batch_id: str, upload: StoredUpload, failed_rows: int, callback_url: str | None,
                metadata: Any) -> int:
        """Record the validated upload and enqueue its chunk jobs, all in one transaction; returns the chunk count."""
        size = chunk_size(upload.accepted_rows, self.settings.batch_chunk_rows)
        ranges = chunk_ranges(upload.accepted_rows, size)
        fields = {
            "status": BatchStatus.QUEUED.value,
            "total_rows": upload.total_rows,
            "accepted_rows": upload.accepted_rows,
            "done_rows": 0,
            "failed_rows": failed_rows,
            "chunk_rows": size,
            "chunks_total": len(ranges),
            "chunks_left": len(ranges),
            "callback_url": callback_url or "",
            "metadata": orjson.dumps(metadata) if metadata is not None else "",
        }
        attempts = self.settings.max_attempts
        with self.connection.pipeline() as pipe:
            pipe.multi()  # RQ's enqueue_job expects a transaction it can join
            pipe.hset(keys.batch(batch_id), mapping=fields)
            for chunk, (start, stop) in enumerate(ranges):
                spec = ChunkSpec(batch_id, chunk, start, stop, tuple(upload.input_names))
                job = Job.create(
                    CHUNK_FUNC, args=(spec.to_payload(),), connection=self.connection, id=chunk_job_id(batch_id, chunk),
                    description=f"batch {batch_id} chunk {chunk}: rows {start}-{stop - 1}",
                    result_ttl=self.settings.result_ttl, failure_ttl=self.settings.result_ttl,
                    serializer=OrjsonSerializer,
                    # The same attempt budget as /predict jobs: a chunk whose worker dies is requeued.
                    retry=Retry(max=attempts - 1, enqueue_at_front=True) if attempts > 1 else None,
                )
                self.queue.enqueue_job(job, pipeline=pipe)
            pipe.execute()
        return len(ranges)

    def discard(self, batch_id: str) -> None:
        """Forget a batch whose upload was rejected or broke off (its files are deleted by the caller)."""
        with self.connection.pipeline() as pipe:
            pipe.delete(keys.batch(batch_id))
            pipe.zrem(keys.batch_expiry(), batch_id)
            pipe.execute()

    def get(self, batch_id: str) -> dict[bytes, bytes]:
        """The batch's record; raises NotFound for an unknown id (or one long past its expiry)."""
        record = self.connection.hgetall(keys.batch(batch_id))
        if not record:
            raise NotFound(f"no batch {batch_id!r}: unknown, or expired more than BATCH_TTL ago", field="id")
        return record

    def end(self, batch_id: str, status: BatchStatus) -> int:
        """Cancel (or expire) a batch: chunks not started never run. Returns how many chunks were stopped,
        -2 if the batch had already ended, -1 if it is unknown."""
        member = delivery_id("batch", batch_id)
        return int(self._end(
            keys=[keys.batch(batch_id), keys.webhooks(), keys.webhook(member)],
            args=[status.value, utc_now(), time.time(), member, self.settings.result_ttl,
                  Job.redis_job_namespace_prefix + chunk_job_prefix(batch_id), self.settings.result_ttl],
        ))

    def chunk_started(self, pipe: Any, batch_id: str) -> None:
        """In the pipeline that marks a chunk job started: move a queued batch to in_progress."""
        self._started(keys=[keys.batch(batch_id)], args=[utc_now()], client=pipe)

    def chunk_done(self, pipe: Any, batch_id: str, done_rows: int, failed_rows: int) -> None:
        """In the pipeline that records a chunk job's end: count its rows; the last chunk ends the batch."""
        member = delivery_id("batch", batch_id)
        self._done(keys=[keys.batch(batch_id), keys.webhooks(), keys.webhook(member)],
                   args=[done_rows, failed_rows, utc_now(), time.time(), member, self.settings.result_ttl],
                   client=pipe)

    def due_for_expiry(self, limit: int = 100) -> list[str]:
        """Ids of batches past their expiry time."""
        return [m.decode() for m in self.connection.zrangebyscore(keys.batch_expiry(), "-inf", time.time(), 0, limit)]

    def claim_expiry(self, batch_id: str) -> bool:
        """Take a batch off the expiry schedule; True for exactly one of several concurrent sweepers."""
        return bool(self.connection.zrem(keys.batch_expiry(), batch_id))
