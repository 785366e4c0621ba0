"""PUBLISHING: write the results of every job a batch completed in one Redis round trip.

Per job this is RQ's own success or failure bookkeeping (status, result, finished or failed registry,
execution cleanup, worker counters), so `rq info` and RQ's tools stay truthful, plus the job's status
document on its `done` list, which wakes any client long-polling for it.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import orjson
import redis
from rq import Worker
from rq.executions import cleanup_execution
from rq.job import JobStatus
from rq.utils import now

from shared import keys
from shared.schema import failed_doc, finished_doc
from shared.signature import ModelSignature
from worker.jobs import ClaimedJob
from worker.runner import RunStats

log = logging.getLogger(__name__)

BATCH_SIZE_HISTORY = 10_000


def predictions(outputs: dict[str, np.ndarray]) -> Any:
    """TF Serving's row format: one value per row for a single output, a dict per row for several."""
    if len(outputs) == 1:
        return next(iter(outputs.values()))
    names = list(outputs)
    rows = len(outputs[names[0]])
    return [{n: outputs[n][i] for n in names} for i in range(rows)]


def publish(
    connection: redis.Redis,
    worker: Worker,
    jobs: list[ClaimedJob],
    signature: ModelSignature,
    result_ttl: int,
    stats: RunStats | None,
    round_trips: int = 0,
) -> None:
    """Record the outcome of `jobs` and the batch's stats, in one pipeline.

    `round_trips` is what claiming this batch cost; this pipeline adds one.
    """
    succeeded = failed = 0
    working_s = 0.0
    with connection.pipeline() as pipe:
        for claimed in jobs:
            if claimed.error is None:
                doc = finished_doc(claimed.id, predictions(claimed.stacked_outputs()), signature.model_ref)
                _finish(pipe, worker, claimed, doc, result_ttl)
                succeeded += 1
            else:
                doc = failed_doc(claimed.id, *claimed.error, model=signature.model_ref)
                _fail(pipe, worker, claimed, doc)
                failed += 1
            if claimed.job.started_at:
                working_s += (claimed.job.ended_at - claimed.job.started_at).total_seconds()
            body = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
            pipe.rpush(keys.done(claimed.id), body)
            pipe.expire(keys.done(claimed.id), result_ttl)
        if stats is not None and stats.rows:
            pipe.hincrby(keys.stats(), "model_calls", stats.model_calls)
            pipe.hincrby(keys.stats(), "rows", stats.rows)
            pipe.hincrby(keys.stats(), "batches", 1)
            pipe.hincrby(keys.stats(), "round_trips", round_trips + 1)
            pipe.lpush(keys.batch_sizes(), stats.rows)
            pipe.ltrim(keys.batch_sizes(), 0, BATCH_SIZE_HISTORY - 1)
        # RQ's per-worker counters, once per batch rather than once per job.
        if succeeded:
            pipe.hincrby(worker.key, "successful_job_count", succeeded)
        if failed:
            pipe.hincrby(worker.key, "failed_job_count", failed)
        if working_s:
            pipe.hincrbyfloat(worker.key, "total_working_time", working_s)
        worker.set_state("idle", pipeline=pipe)
        pipe.execute()


def _finish(pipe: Any, worker: Worker, claimed: ClaimedJob, doc: dict, result_ttl: int) -> None:
    job, execution = claimed.job, claimed.execution
    job.ended_at = now()
    job._result = doc
    job._handle_success(
        result_ttl,
        pipeline=pipe,
        worker_name=worker.name,
        execution_id=execution.id if execution else None,
        execution_started_at=execution.created_at if execution else None,
        execution_ended_at=job.ended_at,
    )
    job.cleanup(result_ttl, pipeline=pipe, remove_from_queue=False)
    cleanup_execution(worker, job, pipe, execution)


def _fail(pipe: Any, worker: Worker, claimed: ClaimedJob, doc: dict) -> None:
    job, execution = claimed.job, claimed.execution
    job.ended_at = now()
    job.set_status(JobStatus.FAILED, pipeline=pipe)
    cleanup_execution(worker, job, pipe, execution)
    job._handle_failure(
        doc["error"]["message"],
        pipeline=pipe,
        worker_name=worker.name,
        execution_id=execution.id if execution else None,
        execution_started_at=execution.created_at if execution else None,
        execution_ended_at=job.ended_at,
    )
