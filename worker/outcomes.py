"""What publishing tells the outside besides the jobs' own state: one log line per job, and counters.

Counters (Prometheus metrics, the worker's stats, RQ's per-worker job counts) are added up in this process
and written to Redis at most once per FLUSH_S, whatever the rate of micro-batches, so they cost no Redis
work per job.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import redis

from shared import keys, worker_metrics
from shared.schema import JobStatus
from worker.claim import Claim
from worker.runner import RunStats

log = logging.getLogger("worker.publish")

FLUSH_S = 1.0  # the longest counters wait in this process before they are written to Redis
MICROBATCH_SIZE_HISTORY = 10_000


@dataclass
class PublishedResult:
    """One published job: how it ended and seconds since it was submitted."""

    claim: Claim
    status: JobStatus
    latency_s: float | None


def latency_s(claim: Claim) -> float | None:
    """Seconds from enqueue (the API's clock) to now (ours); None if no enqueue time was recorded."""
    if claim.enqueued_at is None:
        return None
    return max(0.0, (datetime.datetime.now(datetime.UTC) - claim.enqueued_at).total_seconds())


def log_result(result: PublishedResult) -> None:
    """One line per job, carrying the request id of the HTTP request that submitted it."""
    claim = result.claim
    took = f" {result.latency_s * 1000:.1f} ms after submit" if result.latency_s is not None else ""
    extra = {"request_id": claim.request_id, "job_id": claim.id}
    if claim.error is None:
        log.info("job %s %s: %d row(s)%s", claim.id, result.status.value, claim.rows, took, extra=extra)
    else:
        log.warning(
            "job %s %s: %s: %s", claim.id, result.status.value, claim.error.code.value, claim.error.message, extra=extra
        )


@dataclass
class Tally:
    """Counters waiting to be written: metric increments, stats, micro-batch sizes and RQ's worker counts."""

    worker_key: str  # RQ's worker hash, which holds its job counts
    metrics: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    stats: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    worker_counts: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))  # RQ's fields
    sizes: list[int] = field(default_factory=list)
    _flushed: float = field(default_factory=time.monotonic)

    def add(self, published: Iterable[PublishedResult], run: RunStats | None, round_trips: int) -> None:
        """Count published jobs, and one micro-batch's model work (`run`) with the round trips it cost."""
        published = list(published)
        for result in published:
            self.metrics[worker_metrics.job_status_field(result.status.value)] += 1
            self._count_tenant(result.claim)
            model = result.claim.model_ref
            if model.name:
                self.metrics[worker_metrics.model_jobs_field(model.name, model.version, result.status.value)] += 1
            if result.claim.error is not None:
                self.metrics[worker_metrics.job_error_field(result.claim.error.code.value)] += 1
        _add(
            self.metrics,
            worker_metrics.JOB_LATENCY.increments(r.latency_s for r in published if r.latency_s is not None),
        )
        failed = sum(1 for r in published if r.claim.error is not None)
        self.worker_counts["failed_job_count"] += failed
        self.worker_counts["successful_job_count"] += len(published) - failed
        if run is not None and run.rows:
            _add(self.metrics, worker_metrics.MICROBATCH_ROWS.increments([run.rows]))
            _add(self.metrics, worker_metrics.MICROBATCH_SECONDS.increments([run.model_s]))
            _add(
                self.stats,
                {"model_calls": run.model_calls, "rows": run.rows, "microbatches": 1, "round_trips": round_trips},
            )
            self.stats["model_s"] += run.model_s
            self.worker_counts["total_working_time"] += run.model_s
            self.sizes.append(run.rows)

    def _count_tenant(self, claim: Claim) -> None:
        """The job's key: one more job ended, its rows, its wait from enqueue to claim."""
        self.metrics[worker_metrics.tenant_field(worker_metrics.TENANT_JOBS, claim.tenant)] += 1
        self.metrics[worker_metrics.tenant_field(worker_metrics.TENANT_ROWS, claim.tenant)] += claim.rows
        if claim.waited_s is not None:
            _add(self.metrics, worker_metrics.tenant_wait(claim.tenant).increments([claim.waited_s]))

    def due(self) -> bool:
        return time.monotonic() - self._flushed >= FLUSH_S

    def flush(self, connection: redis.Redis) -> None:
        """Write what was counted (one round trip); kept for the next flush if Redis fails."""
        if self.metrics or self.stats or self.worker_counts or self.sizes:
            with connection.pipeline(transaction=False) as pipe:
                for name, amount in self.metrics.items():
                    pipe.hincrbyfloat(keys.metrics(), name, amount)
                for name, amount in self.stats.items():
                    pipe.hincrbyfloat(keys.stats(), name, amount)
                for name, amount in self.worker_counts.items():
                    pipe.hincrbyfloat(self.worker_key, name, amount)
                if self.sizes:
                    pipe.lpush(keys.microbatch_sizes(), *reversed(self.sizes))
                    pipe.ltrim(keys.microbatch_sizes(), 0, MICROBATCH_SIZE_HISTORY - 1)
                pipe.execute()
        self.metrics, self.stats, self.worker_counts = defaultdict(float), defaultdict(float), defaultdict(float)
        self.sizes = []
        self._flushed = time.monotonic()


def _add(totals: defaultdict[str, float], amounts: Mapping[str, float]) -> None:
    """Add `amounts` to `totals`, field by field."""
    for name, amount in amounts.items():
        totals[name] += amount
