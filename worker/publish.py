"""PUBLISHING: write the results of the jobs a micro-batch ended, in one Lua call, each at most once.

shared/lua/publish.lua removes each job's lease from RQ's started registry and, only if that removal
succeeded (the lease was still this worker's), ends the job in RQ's format: status, end time and the
result in the job hash, its id in RQ's finished or failed registry and in our expiry index. It then
publishes one message listing the results (what wakes waiting requests, see api/jobs/waiter.py), schedules
webhooks, and counts the rows of bulk chunks in their batch. One command per job (its hash) and a few per
call (the fence is a ZMSCORE and one ZREM per started registry).

Bulk chunks write their outputs to storage (`chunks`) first, so a chunk is counted only once its file exists.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import redis

from shared import keys, lua, rq_keys
from shared.batches import utc_now
from shared.payload import ENDED_DATA
from shared.schema import JobStatus, error_doc, finished_doc
from shared.signature import ModelSignature
from shared.webhooks import delivery_id
from worker.chunks import ChunkFiles
from worker.claim import Claim
from worker.outcomes import PublishedResult, Tally, latency_s, log_result
from worker.runner import RunStats

log = logging.getLogger(__name__)


def predictions(outputs: dict[str, np.ndarray]) -> Any:
    """TF Serving's row format: one value per row for a single output, a dict per row for several."""
    if len(outputs) == 1:
        return next(iter(outputs.values()))
    names = list(outputs)
    rows = len(outputs[names[0]])
    return [{n: outputs[n][i] for n in names} for i in range(rows)]


@dataclass
class Ending:
    """How one job ends: the values publish.lua takes for it."""

    claim: Claim
    status: JobStatus  # as clients see it (finished, failed, expired)
    document: bytes
    done_rows: int = 0  # for a chunk job: its rows with outputs, and its rows without
    failed_rows: int = 0

    def script_args(self) -> list[Any]:
        claim = self.claim
        rq_status = rq_keys.FINISHED if self.status is JobStatus.FINISHED else rq_keys.FAILED
        member = delivery_id("batch", claim.chunk.batch) if claim.chunk else delivery_id("job", claim.id)
        return [
            claim.id,
            claim.lease,
            claim.queue_index + 1,
            rq_status,
            self.document,
            claim.callback_url or "",
            member,
            keys.webhook(member),
            keys.batch(claim.chunk.batch) if claim.chunk else "",
            self.done_rows,
            self.failed_rows,
        ]


def publish_endings(
    client: redis.Redis, queue_names: Sequence[str], endings: Sequence[Ending], result_ttl: int
) -> list[bool]:
    """publish.lua: end each job whose lease is still ours; returns, per ending, whether it was published."""
    script_keys = [keys.purge_index(), keys.webhooks()]
    for name in queue_names:
        script_keys += [rq_keys.started(name), rq_keys.finished(name), rq_keys.failed(name)]
    now = time.time()
    args: list[Any] = [
        rq_keys.timestamp(),
        utc_now(),
        now,
        now + result_ttl,
        result_ttl,
        keys.results_channel(),
        rq_keys.JOB_PREFIX,
        ENDED_DATA,
    ]
    for ending in endings:
        args += ending.script_args()
    flags = lua.script("publish", "webhook", "batch", "zadd")(keys=script_keys, args=args, client=client)
    return [bool(flag) for flag in flags]


class Publisher:
    """Writes the outcome of completed claims, each at most once; see the module docstring."""

    ROUND_TRIPS = 1

    def __init__(
        self,
        connection: redis.Redis,
        queue_names: Sequence[str],
        signature: ModelSignature | None,
        result_ttl: int,
        tally: Tally,
        chunks: ChunkFiles | None = None,
    ) -> None:
        self.connection = connection
        self.queue_names = list(queue_names)
        self.signature = signature
        self.result_ttl = result_ttl
        self.tally = tally
        self.chunks = chunks

    def publish(self, claims: list[Claim], stats: RunStats | None, round_trips: int = 0) -> list[Claim]:
        """Record the outcome of `claims` and the micro-batch's stats; returns the claims skipped as no longer ours.

        `round_trips` is what claiming these jobs cost, for the worker's stats.
        """
        endings, lost = [], []
        for claim in claims:
            ending = self._ending(claim)
            if ending is not None:
                endings.append(ending)
            elif self.chunks is not None and not self.chunks.retry(self.queue_names[claim.queue_index], claim):
                lost.append(claim)  # a chunk to run again later, whose lease had lapsed meanwhile
        flags = publish_endings(self.connection, self.queue_names, endings, self.result_ttl) if endings else []
        published = [PublishedResult(e.claim, e.status, latency_s(e.claim)) for e, ok in zip(endings, flags) if ok]
        # Counted here, written by the caller (`tally.flush`): a flush that fails must not make the caller
        # publish these claims again.
        self.tally.add(published, stats, round_trips + self.ROUND_TRIPS)
        for result in published:
            log_result(result)
        return lost + [e.claim for e, ok in zip(endings, flags) if not ok]

    def _ending(self, claim: Claim) -> Ending | None:
        """The result of one claim (for a chunk: after writing its outputs to storage); None for a chunk that
        failed on storage with attempts left, which runs again later instead."""
        model = claim.model_ref if claim.model or self.signature is None else self.signature.model_ref
        if claim.chunk is not None and self.chunks is not None:
            counts = self.chunks.save(claim)
            if counts is None:
                return None
            done, failed = counts
            doc = (
                error_doc(claim.id, claim.error, model)
                if claim.error is not None
                else {
                    "id": claim.id,
                    "batch": claim.chunk.batch,
                    "chunk": claim.chunk.chunk,
                    "rows": done,
                    "status": JobStatus.FINISHED.value,
                    "model": model.to_dict(),
                }
            )
            return Ending(claim, JobStatus(doc["status"]), orjson.dumps(doc), done, failed)
        if claim.error is None:
            doc = finished_doc(claim.id, predictions(claim.stacked_outputs()), model)
        else:
            doc = error_doc(claim.id, claim.error, model)
        if claim.request_id:
            doc["request_id"] = claim.request_id
        return Ending(claim, JobStatus(doc["status"]), orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY))
