"""What a published batch tells the outside besides Redis state: metric increments and one log line per job."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rq.utils import now

from shared import metrics
from worker.claims import Claim
from worker.runner import RunStats

log = logging.getLogger("worker.publish")


@dataclass
class Outcome:
    """One published job: its final status, seconds since it was submitted, and its request id."""

    claimed: Claim
    status: str
    latency_s: float | None
    request_id: str | None


def latency_s(claimed: Claim) -> float | None:
    """Seconds from enqueue (the API's clock) to now (ours); None if RQ recorded no enqueue time."""
    enqueued = claimed.job.enqueued_at
    return max(0.0, (now() - enqueued).total_seconds()) if enqueued else None


def metric_increments(outcomes: list[Outcome], stats: RunStats | None) -> dict[str, float]:
    """What to add to the metrics hash for these jobs and this batch (see shared/metrics.py)."""
    counts: dict[str, float] = {}
    for outcome in outcomes:
        field = metrics.job_status_field(outcome.status)
        counts[field] = counts.get(field, 0) + 1
    counts.update(metrics.JOB_LATENCY.increments(o.latency_s for o in outcomes if o.latency_s is not None))
    if stats is not None and stats.rows:
        counts.update(metrics.BATCH_SIZE.increments([stats.rows]))
        counts.update(metrics.BATCH_SECONDS.increments([stats.model_s]))
    return counts


def log_outcome(outcome: Outcome) -> None:
    """One line per job, carrying the request id of the HTTP request that submitted it."""
    claimed = outcome.claimed
    took = f" {outcome.latency_s * 1000:.1f} ms after submit" if outcome.latency_s is not None else ""
    extra = {"request_id": outcome.request_id, "job_id": claimed.id}
    if claimed.error is None:
        log.info("job %s %s: %d row(s)%s", claimed.id, outcome.status, claimed.rows, took, extra=extra)
    else:
        log.warning("job %s %s: %s: %s", claimed.id, outcome.status, claimed.error.code.value, claimed.error.message, extra=extra)
