"""PUBLISHING: write the results of every job a batch completed in one MULTI/EXEC, each at most once.

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
from redis.client import Pipeline
from redis.exceptions import WatchError
from rq import Worker
from rq.executions import cleanup_execution
from rq.job import JobStatus
from rq.utils import now

from shared import keys, webhooks
from shared.schema import error_doc, finished_doc
from shared.signature import ModelSignature
from worker.chunks import ChunkStore
from worker.claims import Claim
from worker.outcomes import Outcome, latency_s, log_outcome, metric_increments
from worker.runner import RunStats

log = logging.getLogger(__name__)

BATCH_SIZE_HISTORY = 10_000

# KEYS: each job's started registry, then each job's done list. ARGV: each job's lease (registry entry).
# Returns, per job, 1 if this worker may publish it: its lease is still registered and it has no document.
OWNED_SCRIPT = """
local n = #ARGV
local out = {}
for i = 1, n do
  local mine = redis.call('ZSCORE', KEYS[i], ARGV[i])
  out[i] = (mine and redis.call('EXISTS', KEYS[n + i]) == 0) and 1 or 0
end
return out
"""


def predictions(outputs: dict[str, np.ndarray]) -> Any:
    """TF Serving's row format: one value per row for a single output, a dict per row for several."""
    if len(outputs) == 1:
        return next(iter(outputs.values()))
    names = list(outputs)
    rows = len(outputs[names[0]])
    return [{n: outputs[n][i] for n in names} for i in range(rows)]


class Publisher:
    """Writes the outcome of completed jobs, each at most once.

    Publishing is conditional on the claim still being this worker's: a worker that was too slow (or cut
    off from Redis) may have lost its lease on a job, which the recovery sweep then requeued for another
    worker. So the job hashes are WATCHed, one Lua call reads which leases are still in RQ's started
    registry and which jobs have no document yet, and only those are written, in one MULTI/EXEC. If the
    recovery sweep requeues one of them meanwhile, the hash changes, EXEC is refused, and we look again.
    Three round trips per batch, none per job. Bulk chunks write their outputs to storage (`chunks`) and
    their batch's counters instead of a done document; metrics and webhooks ride in the same transaction.
    """

    ROUND_TRIPS = 3  # WATCH, the ownership check, MULTI/EXEC

    def __init__(self, connection: redis.Redis, worker: Worker, signature: ModelSignature, result_ttl: int,
                 chunks: ChunkStore | None = None) -> None:
        self.connection = connection
        self.worker = worker
        self.signature = signature
        self.result_ttl = result_ttl
        self.chunks = chunks

    def publish(self, jobs: list[Claim], stats: RunStats | None, round_trips: int = 0) -> list[Claim]:
        """Record the outcome of `jobs` and the batch's stats; returns the jobs skipped as no longer ours.

        `round_trips` is what claiming these jobs cost, for the worker's stats.
        """
        with self.connection.pipeline() as pipe:
            while True:
                try:
                    owned = self._owned(pipe, jobs)
                    pipe.multi()
                    published = [claimed for claimed, ours in zip(jobs, owned) if ours]
                    outcomes = [o for o in (self._record(pipe, claimed) for claimed in published) if o is not None]
                    _record_counters(pipe, self.worker, published)
                    _record_stats(pipe, stats, round_trips + self.ROUND_TRIPS)
                    for field, amount in metric_increments(outcomes, stats).items():
                        pipe.hincrbyfloat(keys.metrics(), field, amount)
                    self.worker.set_state("idle", pipeline=pipe)
                    pipe.execute()
                    break
                except WatchError:
                    pipe.reset()  # a job was requeued (or finished elsewhere) while we looked: look again
        for outcome in outcomes:
            log_outcome(outcome)
        return [claimed for claimed, ours in zip(jobs, owned) if not ours]

    def _owned(self, pipe: Pipeline, jobs: list[Claim]) -> list[bool]:
        if not jobs:
            return []
        pipe.watch(*{claimed.job.key for claimed in jobs})
        registries = [claimed.job.started_job_registry.key for claimed in jobs]
        done = [keys.result(claimed.id) for claimed in jobs]
        leases = [claimed.lease or "" for claimed in jobs]
        return [bool(flag) for flag in pipe.eval(OWNED_SCRIPT, 2 * len(jobs), *registries, *done, *leases)]

    def _record(self, pipe: Pipeline, claimed: Claim) -> Outcome | None:
        """One job's writes; returns what to log and count (None for a bulk chunk)."""
        if claimed.chunk is not None and self.chunks is not None:
            self._record_chunk(pipe, claimed)
            return None
        if claimed.error is None:
            doc = finished_doc(claimed.id, predictions(claimed.stacked_outputs()), self.signature.model_ref)
            _finish(pipe, self.worker, claimed, doc, self.result_ttl)
        else:
            doc = error_doc(claimed.id, claimed.error, model=self.signature.model_ref)
            _fail(pipe, self.worker, claimed, doc)
        request_id = (claimed.job.meta or {}).get("request_id")
        if request_id:
            doc["request_id"] = request_id
        pipe.rpush(keys.result(claimed.id), orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY))
        pipe.expire(keys.result(claimed.id), self.result_ttl)
        callback_url = (claimed.job.meta or {}).get("callback_url")
        if callback_url:
            webhooks.enqueue(pipe, "job", claimed.id, callback_url, self.result_ttl)
        return Outcome(claimed, doc["status"], latency_s(claimed), request_id)

    def _record_chunk(self, pipe: Pipeline, claimed: Claim) -> None:
        """A chunk's RQ bookkeeping (its result is a summary; the outputs are in storage) and its batch's counters.

        The outputs are written before the transaction runs, so a chunk is counted done only once its file exists.
        """
        counts = self.chunks.save(claimed)
        if claimed.error is None:
            doc = {"batch": claimed.chunk.batch, "chunk": claimed.chunk.chunk, "rows": counts[0],
                   "status": "finished", "model": self.signature.model_ref}
            _finish(pipe, self.worker, claimed, doc, self.result_ttl)
        else:
            _fail(pipe, self.worker, claimed, error_doc(claimed.id, claimed.error, model=self.signature.model_ref))
        self.chunks.finished(pipe, claimed, *counts)


def _record_counters(pipe: Pipeline, worker: Worker, published: list[Claim]) -> None:
    """RQ's per-worker counters, once per batch rather than once per job."""
    failed = sum(1 for claimed in published if claimed.error is not None)
    if len(published) - failed:
        pipe.hincrby(worker.key, "successful_job_count", len(published) - failed)
    if failed:
        pipe.hincrby(worker.key, "failed_job_count", failed)
    working_s = sum((c.job.ended_at - c.job.started_at).total_seconds() for c in published
                    if c.job.started_at and c.job.ended_at)
    if working_s:
        pipe.hincrbyfloat(worker.key, "total_working_time", working_s)


def _record_stats(pipe: Pipeline, stats: RunStats | None, round_trips: int) -> None:
    if stats is not None and stats.rows:
        pipe.hincrby(keys.stats(), "model_calls", stats.model_calls)
        pipe.hincrby(keys.stats(), "rows", stats.rows)
        pipe.hincrby(keys.stats(), "microbatches", 1)
        pipe.hincrby(keys.stats(), "round_trips", round_trips)
        pipe.lpush(keys.microbatch_sizes(), stats.rows)
        pipe.ltrim(keys.microbatch_sizes(), 0, BATCH_SIZE_HISTORY - 1)


def _finish(pipe: Any, worker: Worker, claimed: Claim, doc: dict, result_ttl: int) -> None:
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


def _fail(pipe: Any, worker: Worker, claimed: Claim, doc: dict) -> None:
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
