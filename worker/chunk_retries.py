"""Chunks that failed on storage wait before their next attempt, so that a store outage spends a chunk's
attempts (MAX_ATTEMPTS) over STORAGE_RETRY_S, doubled after each, instead of within a second.

A waiting chunk sits in RQ's scheduled registry of its queue (status `scheduled`, one attempt fewer); the
background thread of any worker puts it back at the front of its queue once due. Several workers may look
at once: the one whose ZREM takes the id enqueues it. A chunk whose batch ended meanwhile (cancelled,
expired) is marked canceled instead, as the batch's end marks its queued chunks.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import redis
from rq import Queue, Worker
from rq.executions import cleanup_execution
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry
from rq.utils import current_timestamp, now

from shared import keys
from shared.batch_records import BatchRecords
from shared.batches import BatchStatus, ChunkSpec
from shared.schema import OrjsonSerializer
from worker.claims import Claim

log = logging.getLogger(__name__)

CANCELED_TTL_S = 3600  # how long the hash of a chunk cancelled here stays readable, like a result


def retry_delay_s(base_s: float, max_attempts: int, retries_left: int) -> float:
    """Seconds before the next attempt: `base_s` after the first failure, doubling after each one."""
    failures = max(1, max_attempts - retries_left)
    return base_s * 2 ** (failures - 1)


def schedule_retry(pipe: Any, worker: Worker, claimed: Claim, base_s: float, max_attempts: int) -> float:
    """In the publish pipeline: end the claim and schedule the chunk's next attempt; returns the delay."""
    job = claimed.job
    delay = retry_delay_s(base_s, max_attempts, job.retries_left or 0)
    cleanup_execution(worker, job, pipe, claimed.execution)
    job.retries_left = (job.retries_left or 0) - 1
    queue = Queue(job.origin, connection=worker.connection, serializer=OrjsonSerializer)
    queue.schedule_job(job, now() + timedelta(seconds=delay), pipeline=pipe)
    return delay


def release_due(connection: redis.Redis, queue_name: str, records: BatchRecords) -> int:
    """Put every chunk whose wait is over back at the front of `queue_name`; returns how many."""
    queue = Queue(queue_name, connection=connection, serializer=OrjsonSerializer)
    registry = ScheduledJobRegistry(queue=queue)
    released = 0
    for job_id in registry.get_jobs_to_schedule(current_timestamp()):
        if not connection.zrem(registry.key, job_id):
            continue  # another worker took it
        job = Job.fetch_many([job_id], connection=connection, serializer=OrjsonSerializer)[0]
        if job is None or job.get_status(refresh=False) != JobStatus.SCHEDULED:
            continue
        spec = ChunkSpec.from_payload(job.args[0])
        batch = records.get(spec.batch).get(b"status", b"").decode()
        with connection.pipeline() as pipe:
            if batch in (BatchStatus.QUEUED.value, BatchStatus.IN_PROGRESS.value):
                queue.enqueue_job(job, pipeline=pipe, at_front=True)
                pipe.incrby(keys.queued_rows(queue_name), spec.rows)
                released += 1
            else:
                job.set_status(JobStatus.CANCELED, pipeline=pipe)
                pipe.expire(job.key, CANCELED_TTL_S)
            pipe.execute()
    return released
