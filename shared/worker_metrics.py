"""The workers' Prometheus metrics as they travel through Redis: counters and histogram buckets in one hash.

Workers add up their increments in process and write them to the hash (`keys.metrics()`) at most once a
second (worker/outcomes.py `Tally`), so metrics cost Redis no work per job; the API's GET /metrics reads
the hash at scrape time and renders it.
One scrape target therefore covers every worker on every machine, and workers need no open port.

Fields: `<metric>:<label value>` for counters (`inference_jobs_total:finished`), `<metric>:le:<bound>` for one histogram
bucket (not cumulative; the API sums them up), `<metric>:sum` and `<metric>:count`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Histogram:
    """A histogram kept in the metrics hash: its Prometheus name, help text and bucket upper bounds."""

    name: str
    help: str
    bounds: tuple[float, ...]

    def increments(self, values: Iterable[float]) -> dict[str, float]:
        """Hash field → amount to add for `values` (one field per touched bucket, plus sum and count)."""
        fields: dict[str, float] = {}
        count, total = 0, 0.0
        for value in values:
            i = bisect.bisect_left(self.bounds, value)
            field = f"{self.name}:le:{_bound(self.bounds[i]) if i < len(self.bounds) else '+Inf'}"
            fields[field] = fields.get(field, 0) + 1
            count += 1
            total += value
        if count:
            fields[f"{self.name}:count"] = count
            fields[f"{self.name}:sum"] = total
        return fields

    def cumulative(self, hash_values: Mapping[str, float]) -> tuple[list[tuple[str, float]], float]:
        """Prometheus buckets [(le, cumulative count)...] ending with +Inf, and the sum, from the hash."""
        buckets, running = [], 0.0
        for le in [*(_bound(b) for b in self.bounds), "+Inf"]:
            running += hash_values.get(f"{self.name}:le:{le}", 0)
            buckets.append((le, running))
        return buckets, hash_values.get(f"{self.name}:sum", 0.0)


def _bound(value: float) -> str:
    return repr(float(value))


JOBS_TOTAL = "inference_jobs_total"  # counter by final status: finished, failed, canceled, expired
JOB_ERRORS = "inference_job_errors_total"  # counter by error code of jobs that failed or expired (schema.ErrorCode)
# Counter by model, version (the one that answered; "" for a job bound to none) and final status. Label values come
# from the served models' names and version directories, never from client text.
MODEL_JOBS = "inference_model_jobs_total"

JOB_LATENCY = Histogram(
    "inference_job_latency_seconds",
    "Seconds from submit (enqueued) to finish, per job (finished or failed).",
    (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
MICROBATCH_ROWS = Histogram(
    "inference_microbatch_rows",
    "Rows per micro-batch (one compiled model call unless it fell back to per-job calls).",
    (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
MICROBATCH_SECONDS = Histogram(
    "inference_microbatch_seconds",
    "Seconds the model spent on one micro-batch.",
    # Up to the limits a micro-batch must stay under, so that dashboards and alerts can read them: 15 s is the
    # lease at the default HEARTBEAT_S of 5 (3 beats; jobs are requeued past it), 60 s the liveness limit
    # (`worker.liveness --max-age-s 60`). tests/unit/test_timing_agreement.py keeps them in step.
    (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0),
)
HISTOGRAMS = (JOB_LATENCY, MICROBATCH_ROWS, MICROBATCH_SECONDS)

# By API key name (shared/fair.py; "-" for anonymous traffic): jobs and rows that ended, and the wait from
# enqueue to claim. The wait histogram's fields carry the name: `<metric>@<tenant>:le:<bound>`.
TENANT_JOBS = "inference_tenant_jobs_total"
TENANT_ROWS = "inference_tenant_rows_total"
TENANT_WAIT = "inference_tenant_wait_seconds"
TENANT_WAIT_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
ANONYMOUS_TENANT = "-"  # the tenant label of anonymous traffic; no key name starts with "-"


def tenant_wait(tenant: str) -> Histogram:
    """One key's histogram of seconds from enqueue to claim."""
    return Histogram(
        f"{TENANT_WAIT}@{tenant or ANONYMOUS_TENANT}", "Seconds jobs waited from enqueue to claim.", TENANT_WAIT_BOUNDS
    )


def tenant_field(metric: str, tenant: str) -> str:
    """The counter field of `metric` (TENANT_JOBS or TENANT_ROWS) for one key."""
    return f"{metric}:{tenant or ANONYMOUS_TENANT}"


# Counters by label value, written by the workers' background thread (shared/webhooks.py).
WEBHOOK_CALLS = "inference_webhook_calls_total"  # by outcome: delivered, failed (each failed call counts)
WEBHOOK_GIVEN_UP = "inference_webhook_given_up_total"  # deliveries dropped after WEBHOOK_MAX_ATTEMPTS calls
WEBHOOK_OUTCOMES = ("delivered", "failed")

# Read from Redis at scrape time by api/metrics.py and api/queue_metrics.py (nothing stored under these names).
QUEUE_ROWS = "inference_queue_rows"  # the queue depth: rows waiting, the figure MAX_QUEUE_DEPTH limits
QUEUED_JOBS = "inference_queued_jobs"  # jobs waiting (LLEN), whatever their rows
# Renamed metrics, old name → new; the old name is still exported (same values, HELP saying so) for one release.
RENAMED_METRICS = {"inference_queue_depth": QUEUED_JOBS}
QUEUE_OLDEST_AGE = "inference_queue_oldest_job_age_seconds"
TENANT_QUEUED_ROWS = "inference_tenant_queued_rows"
TENANT_RUNNING_ROWS = "inference_tenant_running_rows"
TENANT_OLDEST_AGE = "inference_tenant_oldest_job_age_seconds"
BULK_ROWS_PENDING = "inference_bulk_rows_pending"
BATCHES = "inference_batches"
WEBHOOK_BACKLOG = "inference_webhook_backlog"
WEBHOOK_DUE = "inference_webhook_due"
MICROBATCHES = "inference_microbatches_total"
REDIS_ROUND_TRIPS = "inference_redis_round_trips_total"


def job_status_field(status: str) -> str:
    """The counter field for one job reaching final `status`."""
    return f"{JOBS_TOTAL}:{status}"


def model_jobs_field(model: str, version: str, status: str) -> str:
    """The counter field for one job of `model` `version` reaching final `status`."""
    return f"{MODEL_JOBS}:{status}:{model}:{version}"


def model_jobs_labels(field_name: str) -> tuple[str, str, str] | None:
    """(model, version, status) of a `model_jobs_field`, or None for another field."""
    if not field_name.startswith(MODEL_JOBS + ":"):
        return None
    status, _, rest = field_name[len(MODEL_JOBS) + 1 :].partition(":")
    model, _, version = rest.rpartition(":")
    return model, version, status


def job_error_field(code: str) -> str:
    """The counter field for one job failing (or expiring) with error `code`."""
    return f"{JOB_ERRORS}:{code}"


def webhook_call_field(outcome: str) -> str:
    """The counter field for one webhook call ending with `outcome` (delivered or failed)."""
    return f"{WEBHOOK_CALLS}:{outcome}"
