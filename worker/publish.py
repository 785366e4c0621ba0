"""PUBLISHING: write the results of every job a batch completed in one Redis round trip.

Per job this is RQ's own success or failure bookkeeping (status, result, finished or failed registry,
execution cleanup, worker counters), so `rq info` and RQ's tools stay truthful, plus the job's status
document on its `done` list, which wakes any client long-polling for it, and its webhook delivery if it
has a callback URL. A bulk chunk's outputs go to storage first; in the pipeline it gets RQ's bookkeeping
(with a small summary as its result) and one update of its batch's counters.
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

from shared import keys, metrics, webhooks
from shared.schema import failed_doc, finished_doc
from shared.signature import ModelSignature
from worker.chunks import ChunkStore
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
    chunks: ChunkStore | None = None,
    round_trips: int = 0,
) -> None:
    """Record the outcome of `jobs` and the batch's stats, in one pipeline (metrics included).

    `round_trips` is what claiming this batch cost; this pipeline adds one.
    """
    outcomes: list[tuple[ClaimedJob, str, float | None, str | None]] = []
    succeeded = failed = 0
    working_s = 0.0
    with connection.pipeline() as pipe:
        for claimed in jobs:
            if claimed.chunk is not None and chunks is not None:
                _publish_chunk(pipe, worker, claimed, chunks, signature, result_ttl)
                succeeded += claimed.error is None
                failed += claimed.error is not None
                continue
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
            request_id = (claimed.job.meta or {}).get("request_id")
            if request_id:
                doc["request_id"] = request_id
            body = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
            pipe.rpush(keys.done(claimed.id), body)
            pipe.expire(keys.done(claimed.id), result_ttl)
            outcomes.append((claimed, doc["status"], _latency_s(claimed), request_id))
            if claimed.job.meta.get("callback_url"):
                webhooks.enqueue(pipe, "job", claimed.id, claimed.job.meta["callback_url"], result_ttl)
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
        for field, amount in _metric_increments(outcomes, stats).items():
            pipe.hincrbyfloat(keys.metrics(), field, amount)
        worker.set_state("idle", pipeline=pipe)
        pipe.execute()
    for outcome in outcomes:
        _log_job(*outcome)


def _metric_increments(outcomes: list[tuple[ClaimedJob, str, float | None, str | None]],
                       stats: RunStats | None) -> dict[str, float]:
    """What to add to the metrics hash for these jobs and this batch (see shared/metrics.py)."""
    counts: dict[str, float] = {}
    for _, status, _, _ in outcomes:
        field = metrics.job_status_field(status)
        counts[field] = counts.get(field, 0) + 1
    counts.update(metrics.JOB_LATENCY.increments(o[2] for o in outcomes if o[2] is not None))
    if stats is not None and stats.rows:
        counts.update(metrics.BATCH_SIZE.increments([stats.rows]))
        counts.update(metrics.BATCH_SECONDS.increments([stats.model_s]))
    return counts


def _latency_s(claimed: ClaimedJob) -> float | None:
    """Seconds from enqueue (the API's clock) to now (ours); None if RQ recorded no enqueue time."""
    enqueued = claimed.job.enqueued_at
    return max(0.0, (now() - enqueued).total_seconds()) if enqueued else None


def _log_job(claimed: ClaimedJob, status: str, latency: float | None, request_id: str | None) -> None:
    """One line per job, carrying the request id of the HTTP request that submitted it."""
    took = f" {latency * 1000:.1f} ms after submit" if latency is not None else ""
    if claimed.error is None:
        log.info("job %s %s: %d row(s)%s", claimed.id, status, claimed.rows, took,
                 extra={"request_id": request_id, "job_id": claimed.id})
    else:
        log.warning("job %s %s: %s: %s", claimed.id, status, claimed.error[0], claimed.error[1],
                    extra={"request_id": request_id, "job_id": claimed.id})


def _publish_chunk(pipe: Any, worker: Worker, claimed: ClaimedJob, chunks: ChunkStore, signature: ModelSignature,
                   result_ttl: int) -> None:
    """A chunk's RQ bookkeeping (its result is a summary; the outputs are in storage) and its batch's counters.

    The outputs are written before the pipeline runs, so a chunk is counted done only once its file exists.
    """
    counts = chunks.save(claimed)
    if claimed.error is None:
        doc = {"batch": claimed.chunk["batch"], "chunk": claimed.chunk["chunk"], "rows": counts[0],
               "status": "finished", "model": signature.model_ref}
        _finish(pipe, worker, claimed, doc, result_ttl)
    else:
        _fail(pipe, worker, claimed, failed_doc(claimed.id, *claimed.error, model=signature.model_ref))
    chunks.finished(pipe, claimed, *counts)


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
