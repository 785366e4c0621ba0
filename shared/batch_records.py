"""A batch's record in Redis and every change to it, for the API (create, read, cancel) and the workers
(retirement).

Redis work per batch is constant per chunk, never per row. The chunk's own moments are in the worker's
Lua calls: claiming a batch's first chunk moves it to in_progress (shared/lua/claim.lua), and publishing
a chunk counts its rows, the last one ending the batch (shared/lua/lib/batch.lua). Whoever moves a batch
to an end state (the last chunk's worker, a cancel, the retirement sweep) adds its webhook delivery in the
same script, so the two cannot disagree.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson
import redis

from shared import fair, keys, lua, rq_keys
from shared.batches import (
    CHUNK_FUNC,
    BatchRecord,
    BatchStatus,
    ChunkSpec,
    chunk_job_id,
    chunk_job_prefix,
    chunk_ranges,
    chunk_size,
    utc_now,
)
from shared.config import Settings
from shared.errors import NotFound
from shared.keys import BatchField
from shared.webhooks import delivery_id


class BatchEnd(Enum):
    """What asking a batch to end (cancel or expire) did."""

    ENDED = "ended"  # it was running (or queued): it is now cancelled or expired
    ALREADY_ENDED = "already_ended"  # it had ended before (retirement still marks it expired)
    UNKNOWN = "unknown"  # no such batch


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

    def begin(self, batch_id: str, callback_url: str | None, metadata: Any, owner: str = "") -> None:
        """Create the record (status validating) and schedule its retirement, before the upload is read.

        `owner` is the creating API key's fingerprint (api.auth), "" when keys are off.
        """
        ttl = self.settings.batch_ttl
        expires = time.time() + ttl
        record: rq_keys.HashFields = {
            BatchField.STATUS: BatchStatus.VALIDATING.value,
            BatchField.CREATED_AT: utc_now(),
            BatchField.EXPIRES_AT: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
            BatchField.CALLBACK_URL: callback_url or "",
            BatchField.METADATA: orjson.dumps(metadata) if metadata is not None else "",
            BatchField.OWNER: owner,
        }
        with self.connection.pipeline() as pipe:
            pipe.hset(keys.batch(batch_id), mapping=record)
            pipe.expire(keys.batch(batch_id), 2 * ttl)
            pipe.zadd(keys.batch_retirement(), {batch_id: expires})
            pipe.execute()

    def enqueue(
        self,
        batch_id: str,
        upload: StoredUpload,
        failed_rows: int,
        callback_url: str | None,
        metadata: Any,
        *,
        lane: str | None = None,
        tenant: str = "",
    ) -> int:
        """Record the validated upload and enqueue its chunk jobs on `tenant`'s sub-queue (shared/fair.py) of
        `lane` (the model's bulk queue, default BULK_QUEUE_NAME), all in one transaction; returns the chunk
        count."""
        size = chunk_size(upload.accepted_rows, self.settings.batch_chunk_rows)
        ranges = chunk_ranges(upload.accepted_rows, size)
        fields: rq_keys.HashFields = {
            BatchField.STATUS: BatchStatus.QUEUED.value,
            BatchField.TOTAL_ROWS: upload.total_rows,
            BatchField.ACCEPTED_ROWS: upload.accepted_rows,
            BatchField.DONE_ROWS: 0,
            BatchField.FAILED_ROWS: failed_rows,
            BatchField.CHUNK_ROWS: size,
            BatchField.CHUNKS_TOTAL: len(ranges),
            BatchField.CHUNKS_LEFT: len(ranges),
            BatchField.CALLBACK_URL: callback_url or "",
            BatchField.METADATA: orjson.dumps(metadata) if metadata is not None else "",
        }
        lane = lane or self.settings.bulk_queue_name
        queue = fair.sub_queue(lane, tenant)
        now, ids = rq_keys.timestamp(), []
        with self.connection.pipeline() as pipe:  # one transaction: the batch and all its chunks, or nothing
            pipe.hset(keys.batch(batch_id), mapping=fields)
            for chunk, (start, stop) in enumerate(ranges):
                spec = ChunkSpec(batch_id, chunk, start, stop, tuple(upload.input_names))
                job = rq_keys.job_fields(
                    queue_name=queue,
                    func_name=CHUNK_FUNC,
                    args=[spec.to_payload()],
                    description=f"batch {batch_id} chunk {chunk}: rows {start}-{stop - 1}",
                    max_attempts=self.settings.max_attempts,
                    now=now,
                )
                job.update({keys.JOB_ROWS: spec.rows, keys.JOB_BATCH: batch_id})
                ids.append(chunk_job_id(batch_id, chunk))
                pipe.hset(rq_keys.job(ids[-1]), mapping=job)
            pipe.sadd(rq_keys.QUEUES, rq_keys.queue(queue))
            pipe.rpush(rq_keys.queue(queue), *ids)
            if upload.accepted_rows > len(ranges):
                pipe.incrby(keys.extra_rows(queue), upload.accepted_rows - len(ranges))
            lua.script("ring_join", "ring")(keys=[keys.ring(lane)], args=[queue], client=pipe)
            pipe.execute()
        return len(ranges)

    def discard(self, batch_id: str) -> None:
        """Forget a batch whose upload was rejected or broke off (its files are deleted by the caller)."""
        with self.connection.pipeline() as pipe:
            pipe.delete(keys.batch(batch_id))
            pipe.zrem(keys.batch_retirement(), batch_id)
            pipe.execute()

    def find(self, batch_id: str) -> BatchRecord | None:
        """The batch's record; None for an unknown id (or one retired long ago)."""
        raw = self.connection.hgetall(keys.batch(batch_id))
        return BatchRecord.from_redis(raw) if raw else None

    def get(self, batch_id: str) -> BatchRecord:
        """The batch's record; raises NotFound for an unknown id (or one retired long ago)."""
        record = self.find(batch_id)
        if record is None:
            raise NotFound(f"no batch {batch_id!r}: unknown, or retired more than BATCH_TTL ago", field="id")
        return record

    def end(self, batch_id: str, status: BatchStatus) -> BatchEnd:
        """Cancel (or expire) a batch: chunks not started never run (batch_end.lua)."""
        member = delivery_id("batch", batch_id)
        stopped = int(
            lua.script("batch_end", "webhook")(
                keys=[keys.batch(batch_id), keys.webhooks(), keys.webhook(member)],
                args=[
                    status.value,
                    utc_now(),
                    time.time(),
                    member,
                    self.settings.result_ttl,
                    rq_keys.JOB_PREFIX + chunk_job_prefix(batch_id),
                    self.settings.result_ttl,
                    keys.extra_rows(""),
                ],
                client=self.connection,
            )
        )
        return BatchEnd.UNKNOWN if stopped == -1 else BatchEnd.ALREADY_ENDED if stopped == -2 else BatchEnd.ENDED

    def due_for_retirement(self, limit: int = 100) -> list[str]:
        """Ids of batches due for retirement (past BATCH_TTL)."""
        return [
            m.decode() for m in self.connection.zrangebyscore(keys.batch_retirement(), "-inf", time.time(), 0, limit)
        ]

    def take_for_retirement(self, batch_id: str) -> bool:
        """Take a batch off the retirement schedule; True for exactly one of several concurrent sweepers."""
        return bool(self.connection.zrem(keys.batch_retirement(), batch_id))
