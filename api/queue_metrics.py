"""The metrics an operator scales and alerts on, read from Redis at scrape time (three round trips).

Per RQ queue: rows waiting (the queued-rows counter the API and workers keep beside each queue list) and
the age of the oldest waiting job (the head of the list; RQ appends at the tail); the same again by lane
and API key name (each key has its own RQ queue in each lane, shared/fair.py), with the rows running (the
jobs holding a lease in each lane's started registry, by their sub-queue). Bulk batches: rows not yet
run in batches that are queued or in progress, and batches by status. Webhooks: deliveries waiting (due
now or retrying later) and those already due. Worker totals the publish pipeline adds up in `keys.stats()`:
micro-batches and the Redis round trips they cost, so a dashboard can divide one rate by the other.
Webhook call counters come from the workers' metrics hash. Rendered by GET /metrics beside the collector in
api/metrics.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from shared import fair, keys, rq_keys, worker_metrics
from shared.batches import BatchStatus
from shared.keys import BatchField

MAX_BATCHES_READ = 10_000  # a scrape reads at most this many batch records (live batches, oldest first)
MAX_RUNNING_READ = 10_000  # and at most this many running jobs per lane (workers × micro-batch jobs: far fewer)
ANONYMOUS_LABEL = worker_metrics.ANONYMOUS_TENANT  # the tenant label of anonymous traffic (API keys off)
ACTIVE_BATCH = (BatchStatus.QUEUED.value, BatchStatus.IN_PROGRESS.value)


@dataclass
class QueueView:
    """What one scrape saw: per-queue rows and oldest age, bulk and webhook backlogs, worker totals."""

    rows: dict[str, int] = field(default_factory=dict)
    oldest_age_s: dict[str, float] = field(default_factory=dict)
    running_rows: dict[str, int] = field(default_factory=dict)  # by sub-queue (RQ origin) of the running jobs
    bulk_rows_pending: int = 0
    batches: dict[str, int] = field(default_factory=dict)
    webhooks_waiting: int = 0
    webhooks_due: int = 0
    stats: dict[str, int] = field(default_factory=dict)
    webhook_calls: dict[str, float] = field(default_factory=dict)
    webhooks_given_up: float = 0.0


def read_view(connection: redis.Redis, now: float | None = None) -> QueueView:
    """Read everything the collector renders; raises redis.RedisError when Redis does not answer."""
    now = time.time() if now is None else now
    view = QueueView()
    with connection.pipeline(transaction=False) as pipe:
        pipe.smembers(rq_keys.QUEUES)
        pipe.zcard(keys.webhooks())
        pipe.zcount(keys.webhooks(), "-inf", now)
        pipe.hgetall(keys.stats())
        pipe.zrange(keys.batch_retirement(), 0, MAX_BATCHES_READ - 1)
        pipe.hmget(
            keys.metrics(),
            [*map(worker_metrics.webhook_call_field, worker_metrics.WEBHOOK_OUTCOMES), worker_metrics.WEBHOOK_GIVEN_UP],
        )
        queue_keys, view.webhooks_waiting, view.webhooks_due, stats, batch_ids, hooks = pipe.execute()
    *calls, given_up = (float(v or 0) for v in hooks)
    view.webhook_calls, view.webhooks_given_up = dict(zip(worker_metrics.WEBHOOK_OUTCOMES, calls)), given_up
    view.stats = {k.decode(): int(float(v)) for k, v in stats.items()}
    prefix = rq_keys.queue("")
    names = sorted(k.decode()[len(prefix) :] for k in queue_keys if k.decode().startswith(prefix))
    with connection.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.llen(prefix + name)
            pipe.get(keys.extra_rows(name))  # queue depth in rows = jobs + the rows beyond each job's first
            pipe.lindex(prefix + name, 0)
        lanes = sorted({fair.lane_of(name) for name in names})
        for lane in lanes:
            pipe.zrange(rq_keys.started(lane), 0, MAX_RUNNING_READ - 1)
        for batch_id in batch_ids:
            fields = (BatchField.STATUS, BatchField.TOTAL_ROWS, BatchField.DONE_ROWS, BatchField.FAILED_ROWS)
            pipe.hmget(keys.batch(batch_id.decode()), *fields)
        replies = pipe.execute()
    heads = {}
    for i, name in enumerate(names):
        jobs, extra, head = replies[3 * i : 3 * i + 3]
        view.rows[name] = max(0, int(jobs) + int(extra or 0))  # the counter may dip below 0 in a race; a gauge may not
        view.oldest_age_s[name] = 0.0
        if head is not None:
            heads[name] = head.decode()
    leases = replies[3 * len(names) : 3 * len(names) + len(lanes)]
    running = [rq_keys.job_id_of(m.decode()) for members in leases for m in members]
    _count_batches(view, replies[3 * len(names) + len(lanes) :])
    _read_jobs(connection, view, heads, running, now)
    return view


def _count_batches(view: QueueView, records: list[list[bytes | None]]) -> None:
    for status, total, done, failed in records:
        if status is None:
            continue  # expired between the two reads
        name = status.decode()
        view.batches[name] = view.batches.get(name, 0) + 1
        if name in ACTIVE_BATCH:
            view.bulk_rows_pending += max(0, int(total or 0) - int(done or 0) - int(failed or 0))


def _read_jobs(connection: redis.Redis, view: QueueView, heads: dict[str, str], running: list[str], now: float) -> None:
    """The oldest waiting job's age per queue (`heads`), and the rows of the `running` jobs by sub-queue."""
    if not heads and not running:
        return
    with connection.pipeline(transaction=False) as pipe:
        for job_id in heads.values():
            pipe.hmget(rq_keys.job(job_id), rq_keys.JobField.ENQUEUED_AT, rq_keys.JobField.CREATED_AT)
        for job_id in running:
            pipe.hmget(rq_keys.job(job_id), rq_keys.JobField.ORIGIN, keys.JOB_ROWS)
        replies = pipe.execute()
    for name, (enqueued, created) in zip(heads, replies):
        when = rq_keys.parse_timestamp(enqueued or created)
        if when is not None:  # else the head was claimed between the two reads: report 0 rather than guess
            view.oldest_age_s[name] = max(0.0, now - when.timestamp())
    for origin, rows in replies[len(heads) :]:
        if origin is not None:  # else it ended and expired between the two reads
            queue = origin.decode()
            view.running_rows[queue] = view.running_rows.get(queue, 0) + int(rows or 1)


class QueueCollector:
    """prometheus-client collector over `read_view`; yields nothing when Redis does not answer
    (api/metrics.py reports that as inference_redis_up 0)."""

    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection

    def collect(self) -> Iterator[Metric]:
        try:
            view = read_view(self.connection)
        except redis.RedisError:
            return
        yield per_queue(
            worker_metrics.QUEUE_ROWS,
            "Rows waiting in each RQ queue: the queue depth MAX_QUEUE_DEPTH limits.",
            view.rows,
        )
        yield per_queue(
            worker_metrics.QUEUE_OLDEST_AGE,
            "Seconds the oldest job waiting in each RQ queue has waited (0 when the queue is empty).",
            view.oldest_age_s,
        )
        yield _per_tenant(worker_metrics.TENANT_QUEUED_ROWS, "Rows waiting, by lane and API key name.", view.rows)
        yield _per_tenant(
            worker_metrics.TENANT_RUNNING_ROWS,
            "Rows of jobs running (claimed by a worker, not yet ended), by lane and API key name.",
            dict.fromkeys(view.rows, 0) | view.running_rows,
        )
        yield _per_tenant(
            worker_metrics.TENANT_OLDEST_AGE,
            "Seconds the oldest job of each API key has waited in each lane (0 when it has none waiting).",
            view.oldest_age_s,
        )
        yield GaugeMetricFamily(
            worker_metrics.BULK_ROWS_PENDING,
            "Rows of queued or in-progress batches not yet run.",
            value=view.bulk_rows_pending,
        )
        batches = GaugeMetricFamily(
            worker_metrics.BATCHES, "Live batches (created within BATCH_TTL) by status.", labels=["status"]
        )
        for status in BatchStatus:
            batches.add_metric([status.value], view.batches.get(status.value, 0))
        yield batches
        yield GaugeMetricFamily(
            worker_metrics.WEBHOOK_BACKLOG,
            "Webhook deliveries not yet done (due now, or waiting to retry).",
            value=view.webhooks_waiting,
        )
        yield GaugeMetricFamily(
            worker_metrics.WEBHOOK_DUE, "Webhook deliveries due now and not yet sent.", value=view.webhooks_due
        )
        calls = CounterMetricFamily(
            worker_metrics.WEBHOOK_CALLS,
            "Webhook calls by outcome (a delivery retried 3 times counts 3 failed calls).",
            labels=["outcome"],
        )
        for outcome, count in view.webhook_calls.items():
            calls.add_metric([outcome], count)
        yield calls
        yield CounterMetricFamily(
            worker_metrics.WEBHOOK_GIVEN_UP,
            "Webhook deliveries given up after WEBHOOK_MAX_ATTEMPTS failed calls.",
            value=view.webhooks_given_up,
        )
        yield CounterMetricFamily(
            worker_metrics.MICROBATCHES,
            "Micro-batches the workers ran (one model call each, unless one fell back to per-job calls).",
            value=view.stats.get("microbatches", 0),
        )
        yield CounterMetricFamily(
            worker_metrics.REDIS_ROUND_TRIPS,
            "Redis round trips the workers spent claiming and publishing those micro-batches.",
            value=view.stats.get("round_trips", 0),
        )


def _per_tenant(name: str, help_text: str, values: Mapping[str, float]) -> GaugeMetricFamily:
    """`values` by RQ queue, relabelled by lane and tenant (shared/fair.py; "-" for anonymous traffic)."""
    family = GaugeMetricFamily(name, help_text, labels=["lane", "tenant"])
    for queue, value in sorted(values.items()):
        family.add_metric([fair.lane_of(queue), fair.tenant_of(queue) or ANONYMOUS_LABEL], value)
    return family


def per_queue(name: str, help_text: str, values: Mapping[str, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=["queue"])
    for queue, value in sorted(values.items()):
        family.add_metric([queue], value)
    return family
