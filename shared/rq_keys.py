"""RQ's storage format, as far as this service reads and writes it: every use of RQ internals lives here.

Jobs are real RQ jobs, so `rq info`, rq-dashboard and `Job.fetch(id)` show them, but the API and the
workers write RQ's keys themselves (a pipeline at submit, one Lua call per micro-batch after that) instead
of going through `Queue.enqueue` and RQ's per-job bookkeeping, which cost dozens of Redis commands per
job. What they write must therefore match RQ's own format exactly: the key names, the job hash fields and
status spellings, the registries' member and score conventions. tests/integration/test_rq_format.py
reads what our scripts wrote back through RQ's public API and fails loudly when an RQ upgrade changes any
of it.

RQ takes its key prefix (`rq`, or RQ_KEY_PREFIX) from the environment when it is imported, and every name
below comes from RQ's own classes, so it carries that prefix; shared/config.py ties RQ_KEY_PREFIX to
REDIS_KEY_PREFIX, so that a deployment's RQ keys sit under its prefix as well.
"""

from __future__ import annotations

import datetime
import functools
import time
import zlib
from enum import StrEnum
from typing import Any

import orjson
from rq.defaults import RQ_KEY_PREFIX
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.registry import (
    CanceledJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from rq.utils import utcformat, utcparse
from rq.worker import Worker

# A hash's fields as redis-py's HSET takes them.
HashFields = dict[str | bytes, Any]

PREFIX = RQ_KEY_PREFIX  # RQ's key prefix, as RQ read it from the environment at import
QUEUES = Queue.redis_queues_keys  # set of every queue's key: how `rq info` finds queues
JOB_PREFIX = Job.redis_job_namespace_prefix  # "rq:job:" + id: the job hash
WORKERS = Worker.redis_workers_keys  # set of every registered worker's key: how `rq info` finds workers

# Job hash statuses, in RQ's spelling.
QUEUED = JobStatus.QUEUED.value
STARTED = JobStatus.STARTED.value
FINISHED = JobStatus.FINISHED.value
FAILED = JobStatus.FAILED.value
CANCELED = JobStatus.CANCELED.value
SCHEDULED = JobStatus.SCHEDULED.value


class JobField(StrEnum):
    """Fields of RQ's job hash that this service writes or reads, in RQ's spelling (ours: keys.JOB_*)."""

    STATUS = "status"
    ORIGIN = "origin"
    CREATED_AT = "created_at"
    ENQUEUED_AT = "enqueued_at"
    STARTED_AT = "started_at"
    ENDED_AT = "ended_at"
    DESCRIPTION = "description"
    DATA = "data"
    META = "meta"
    RETRIES_LEFT = "retries_left"
    WORKER_NAME = "worker_name"


def queue(name: str) -> str:
    """List of waiting job ids (pushed at the tail, taken from the head)."""
    return Queue.redis_queue_namespace_prefix + name


def intermediate(queue_name: str) -> str:
    """List: RQ's intermediate queue of `queue_name` (RQ's own workers move jobs through it; ours never do)."""
    return IntermediateQueue.get_intermediate_queue_key(queue(queue_name))


def worker(name: str) -> str:
    """Hash: RQ's record of a registered worker (its job counts among them)."""
    return Worker.redis_worker_namespace_prefix + name


def job(job_id: str) -> str:
    """Hash: the job (RQ's fields plus ours, see `job_fields`)."""
    return JOB_PREFIX + job_id


def started(queue_name: str) -> str:
    """Sorted set: lease ("<job id>:<claim token>") → Unix time it lapses. RQ's started registry."""
    return StartedJobRegistry.key_template.format(queue_name)


def finished(queue_name: str) -> str:
    """Sorted set: job id → Unix time its result expires. RQ's finished registry."""
    return FinishedJobRegistry.key_template.format(queue_name)


def failed(queue_name: str) -> str:
    """Sorted set: job id → Unix time its result expires. RQ's failed registry."""
    return FailedJobRegistry.key_template.format(queue_name)


def canceled(queue_name: str) -> str:
    """Sorted set: job id → Unix time its result expires. RQ's canceled registry."""
    return CanceledJobRegistry.key_template.format(queue_name)


def scheduled(queue_name: str) -> str:
    """Sorted set: job id → Unix time it goes back to its queue. RQ's scheduled registry."""
    return ScheduledJobRegistry.key_template.format(queue_name)


def lease(job_id: str, token: str) -> str:
    """A started-registry member: RQ's "<job id>:<execution id>" composite key, with our claim token."""
    return f"{job_id}:{token}"


def job_id_of(lease_member: str) -> str:
    """The job id of a started-registry member."""
    return lease_member.split(":", 1)[0]


def timestamp(when: datetime.datetime | None = None) -> str:
    """A time in RQ's job-hash format (UTC, microseconds): `when`, else now.

    Now is RQ's `utcformat` text, with the seconds formatted once per second: a strftime per job (two on
    /predict's path) showed in the API's profile.
    """
    if when is not None:
        return utcformat(when)
    whole, micros = divmod(time.time_ns() // 1000, 1_000_000)  # datetime.now's microseconds: truncated
    return f"{_utc_second(whole)}.{micros:06d}Z"


@functools.lru_cache(maxsize=2)
def _utc_second(whole: int) -> str:
    """RQ's timestamp of a whole second, up to its fraction: "2026-12-04T22:45:01"."""
    return utcformat(datetime.datetime.fromtimestamp(whole, datetime.UTC)).partition(".")[0]


def parse_timestamp(raw: bytes | str | None) -> datetime.datetime | None:
    """The inverse of `timestamp`; None for an empty field."""
    if not raw:
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    try:  # RQ's formats ("...T12:34:56.789012Z", "...T12:34:56Z") in C: strptime showed in the worker's profile
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        parsed = None
    if parsed is not None and parsed.tzinfo is not None:
        return parsed
    return utcparse(text)  # RQ's parser: whatever else it reads, or its error


def job_data(func_name: str, args: list[Any]) -> bytes:
    """The `data` field: RQ's (function, instance, args, kwargs) as our JSON serializer writes it, uncompressed
    (RQ reads uncompressed data when zlib cannot inflate it)."""
    return orjson.dumps([func_name, None, args, {}], option=orjson.OPT_SERIALIZE_NUMPY)


def job_args(data: bytes) -> list[Any]:
    """The args of a `data` field: written by `job_data`, or zlib-compressed by RQ's own `Queue.enqueue`."""
    try:
        data = zlib.decompress(data)
    except zlib.error:
        pass
    return orjson.loads(data)[2]


def job_fields(
    *, queue_name: str, func_name: str, args: list[Any], max_attempts: int, now: str, description: str = ""
) -> HashFields:
    """The RQ fields of a new, queued job hash: only those RQ's readers need, since every field costs Redis
    memory for as long as the result is kept (RESULT_TTL and RQ's other TTL fields are not written: our
    expiry index, not RQ, ends a job's life).

    The attempt budget is RQ's retry count (`retries_left`), so RQ's own registry cleanup spends it the same
    way our recovery sweep does (RQ requeues at the back, recovery at the front).
    """
    fields: HashFields = {
        JobField.STATUS: QUEUED,
        JobField.ORIGIN: queue_name,
        JobField.CREATED_AT: now,
        JobField.ENQUEUED_AT: now,
        JobField.DATA: job_data(func_name, args),
    }
    if description:
        fields[JobField.DESCRIPTION] = description
    if max_attempts > 1:
        fields[JobField.RETRIES_LEFT] = max_attempts - 1
    return fields
