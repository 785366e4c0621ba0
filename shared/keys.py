"""Every Redis key the service writes outside RQ's own keys. No other module builds a key string."""

from __future__ import annotations

PREFIX = "infer"


def model() -> str:
    """String (JSON): the model signature the workers published; no TTL, replaced by each worker start."""
    return f"{PREFIX}:model"


def workers() -> str:
    """Sorted set: worker name → expiry timestamp of its last heartbeat; members pruned by readers."""
    return f"{PREFIX}:workers"


def done(job_id: str) -> str:
    """List holding one element, the job's final status document (JSON); TTL RESULT_TTL, set by the writer.

    A list, not a string, so that waiters can block on it (BLMOVE onto itself leaves it in place).
    """
    return f"{PREFIX}:done:{job_id}"


def batch_sizes() -> str:
    """List of the last 10,000 batch sizes (rows per model call), newest first; capped by the worker."""
    return f"{PREFIX}:stats:batch_sizes"


def stats() -> str:
    """Hash of worker counters: model_calls, rows, batches, round_trips (Redis round trips for those batches); no TTL."""
    return f"{PREFIX}:stats"


def metrics() -> str:
    """Hash of the workers' Prometheus counters and histogram buckets (see shared/metrics.py); no TTL."""
    return f"{PREFIX}:metrics"
