"""Every Redis key the service writes outside RQ's own keys (RQ's key formats live in shared/rq_keys.py).

Application code builds no key string of its own: it calls these functions. Tests and the bench call them too.

Every key starts with REDIS_KEY_PREFIX (default `infer`), so that deployments with different prefixes share
one Redis database without seeing each other. The prefix is read once, when this module is imported, just
as RQ reads RQ_KEY_PREFIX for its own keys: a key name stays plain string building (no Redis command and no
object to pass around), and both families of keys come from the same place, the process's environment.
`shared.connection.connect` refuses settings whose prefixes differ from the ones the process imported with.
"""

from __future__ import annotations

from enum import StrEnum

from shared.config import process_key_prefix

PREFIX = process_key_prefix()


def model() -> str:
    """String (JSON): the model signature the workers advertised; no TTL, replaced by each worker start."""
    return f"{PREFIX}:model"


def model_registry() -> str:
    """Hash: worker name → JSON of the models, versions and version states it serves (shared/model_registry.py);
    no TTL. Rewritten at each heartbeat; kept when the worker stops (the API then shows its models as last
    advertised) until a worker serving the same models starts and deletes it."""
    return f"{PREFIX}:models"


def workers() -> str:
    """Sorted set: worker name → expiry timestamp of its last heartbeat; members pruned by readers."""
    return f"{PREFIX}:workers"


def microbatch_sizes() -> str:
    """List of the last 10,000 micro-batch sizes (rows per model call), newest first; capped by the worker."""
    return f"{PREFIX}:stats:microbatch_sizes"


def stats() -> str:
    """Hash of worker counters: model_calls, rows, microbatches, round_trips (Redis round trips for those
    micro-batches), model_s (seconds in the model); no TTL."""
    return f"{PREFIX}:stats"


def metrics() -> str:
    """Hash of the workers' Prometheus counters and histogram buckets (see shared/worker_metrics.py); no TTL."""
    return f"{PREFIX}:metrics"


def batch(batch_id: str) -> str:
    """Hash: a batch's status, counters, timestamps and options; TTL 2 × BATCH_TTL set by the API at creation
    (the record outlives the batch's files so that readers see `expired`, not 404)."""
    return f"{PREFIX}:batch:{batch_id}"


def batch_retirement() -> str:
    """Sorted set: batch id → Unix time it is retired (BATCH_TTL: its files deleted, its status `expired`); the
    workers' background thread removes members it retires. (The key's name stays, for upgrades.)"""
    return f"{PREFIX}:batches:expiry"


def webhooks() -> str:
    """Sorted set: webhook delivery id (`job:<id>` or `batch:<id>`) → Unix time it is due; no TTL."""
    return f"{PREFIX}:webhooks"


def webhook(delivery_id: str) -> str:
    """Hash: one webhook delivery's url and attempts so far; TTL RESULT_TTL, set by whoever enqueues it."""
    return f"{PREFIX}:webhook:{delivery_id}"


def idempotency(owner: str, key_digest: str) -> str:
    """String (JSON): an Idempotency-Key's record for one owner ("-" with API keys off), by the key's SHA-256;
    TTL set by api/idempotency.py (a short reservation, then RESULT_TTL once the job or batch exists)."""
    return f"{PREFIX}:idempotency:{owner or '-'}:{key_digest}"


def extra_rows(queue_name: str) -> str:
    """String (integer): rows beyond the first of every job waiting in queue `queue_name` (a sub-queue); no TTL.

    The queue depth in rows is LLEN(queue) + this, so a one-row job costs no counter update. Changed only
    together with the queue list itself (submit, claim, cancel, requeue); may dip below 0 for an instant
    (a claim can land between a submit's RPUSH and its INCRBY); reset to 0 by the recovery sweep whenever
    the queue is empty.
    """
    return f"{PREFIX}:extra_rows:{queue_name}"


def ring(lane: str) -> str:
    """List: the sub-queues of lane `lane` (one RQ queue per API key, shared/fair.py) with waiting work, in turn
    order, each once, exactly while it has jobs waiting (shared/fair.py's invariant); no TTL. Added to by whoever
    pushes to an empty sub-queue (the API's submit, recover.lua, release.lua, ring_join.lua), rotated by
    claim.lua (lib/fair.lua), left by the claim or cancel that empties a sub-queue. Workers wait on it when idle."""
    return f"{PREFIX}:ring:{lane}"


def deficits(lane: str) -> str:
    """Hash: sub-queue → its deficit (rows it may still take this turn) in lane `lane`; no TTL; claim.lua's."""
    return f"{PREFIX}:deficits:{lane}"


def purge_index() -> str:
    """Sorted set: id of an ended job → Unix time its hash (and the result in it) is purged; no TTL.

    One index instead of an EXPIRE per job: the recovery sweep purges what is due in bulk. (The key's name
    predates the word "purge"; it stays so that an upgrade finds the index it left.)
    """
    return f"{PREFIX}:expiry"


def results_channel() -> str:
    """Pub/sub channel: each message lists the jobs a publish ended, one "<id> <result JSON>" line each."""
    return f"{PREFIX}:results"


def recovery_lock() -> str:
    """String: name of the worker running the recovery sweep; TTL one HEARTBEAT_S, set by that worker."""
    return f"{PREFIX}:recovery:lock"


# Fields this service adds to RQ's job hash (`rq:job:<id>`).
JOB_ROWS = "infer_rows"  # rows the job carries, for the queue depth in rows
JOB_DEADLINE = "infer_deadline"  # Unix time after which the job must not start (absent: no deadline)
JOB_OWNER = "infer_owner"  # SHA-256 of the API key that created the job (absent when keys are off)
JOB_BATCH = "infer_batch"  # the batch of a chunk job (absent for other jobs)
JOB_RESULT = "result"  # the result document (JSON), once the job ended; RQ's own field name for a result


class BatchField(StrEnum):
    """Fields of a batch's record (`batch`); read through shared.batch_records.BatchRecord."""

    STATUS = "status"
    CREATED_AT = "created_at"
    STARTED_AT = "started_at"
    FINISHED_AT = "finished_at"
    EXPIRES_AT = "expires_at"
    CALLBACK_URL = "callback_url"
    METADATA = "metadata"
    OWNER = "owner"
    TOTAL_ROWS = "total_rows"
    ACCEPTED_ROWS = "accepted_rows"
    DONE_ROWS = "done_rows"
    FAILED_ROWS = "failed_rows"
    CHUNK_ROWS = "chunk_rows"
    CHUNKS_TOTAL = "chunks_total"
    CHUNKS_LEFT = "chunks_left"


class WebhookField(StrEnum):
    """Fields of a webhook delivery's record (`webhook`)."""

    URL = "url"
    ATTEMPTS = "attempts"
