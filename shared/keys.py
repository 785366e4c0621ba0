"""Every Redis key the service writes outside RQ's own keys (RQ's key formats live in shared/rq_keys.py).

Application code builds no key string of its own: it calls these functions. Tests and the bench call them too."""

from __future__ import annotations

PREFIX = "infer"


def model() -> str:
    """String (JSON): the model signature the workers published; no TTL, replaced by each worker start."""
    return f"{PREFIX}:model"


def workers() -> str:
    """Sorted set: worker name → expiry timestamp of its last heartbeat; members pruned by readers."""
    return f"{PREFIX}:workers"


def result(job_id: str) -> str:
    """List holding one element, the job's result (its final status document, JSON); TTL RESULT_TTL, set by the writer.

    A list, not a string, so that waiters can block on it (BLMOVE onto itself leaves it in place).
    """
    return f"{PREFIX}:result:{job_id}"


def microbatch_sizes() -> str:
    """List of the last 10,000 micro-batch sizes (rows per model call), newest first; capped by the worker."""
    return f"{PREFIX}:stats:microbatch_sizes"


def stats() -> str:
    """Hash of worker counters: model_calls, rows, microbatches, round_trips (Redis round trips for those micro-batches); no TTL."""
    return f"{PREFIX}:stats"


def metrics() -> str:
    """Hash of the workers' Prometheus counters and histogram buckets (see shared/metrics.py); no TTL."""
    return f"{PREFIX}:metrics"


def batch(batch_id: str) -> str:
    """Hash: a batch's status, counters, timestamps and options; TTL 2 × BATCH_TTL set by the API at creation
    (the record outlives the batch's files so that readers see `expired`, not 404)."""
    return f"{PREFIX}:batch:{batch_id}"


def batch_expiry() -> str:
    """Sorted set: batch id → Unix time its files expire; the workers' background thread removes members it sweeps."""
    return f"{PREFIX}:batches:expiry"


def webhooks() -> str:
    """Sorted set: webhook delivery id (`job:<id>` or `batch:<id>`) → Unix time it is due; no TTL."""
    return f"{PREFIX}:webhooks"


def webhook(delivery_id: str) -> str:
    """Hash: one webhook delivery's url and attempts so far; TTL RESULT_TTL, set by whoever enqueues it."""
    return f"{PREFIX}:webhook:{delivery_id}"


def queued_rows(queue_name: str) -> str:
    """String (integer): rows of the jobs waiting in queue `queue_name`; no TTL.

    Changed only together with the queue list itself (submit, claim, cancel, requeue), in the same
    transaction or Lua call; reset to 0 by the recovery sweep whenever the queue is empty.
    """
    return f"{PREFIX}:queued_rows:{queue_name}"


def recovery_lock() -> str:
    """String: name of the worker running the recovery sweep; TTL one HEARTBEAT_S, set by that worker."""
    return f"{PREFIX}:recovery:lock"


def intermediate_seen(queue_name: str) -> str:
    """String (JSON list): job ids the last recovery pass saw in the queue's RQ intermediate list; TTL set by it."""
    return f"{PREFIX}:recovery:intermediate:{queue_name}"


# Fields this service adds to RQ's job hash (`rq:job:<id>`), which expires with the job.
JOB_ROWS = "infer_rows"  # rows the job carries, for the queued-rows counter
JOB_DEADLINE = "infer_deadline"  # Unix time after which the job must not start (absent: no deadline)
JOB_OWNER = "infer_owner"  # SHA-256 of the API key that created the job (absent when keys are off)
