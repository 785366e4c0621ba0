"""GET /metrics: Prometheus text format, for the API processes and (through Redis) for every worker.

Two sources, one page:
  - this API's own HTTP metrics, kept by prometheus-client; served, in multiprocess mode (api/serve.py or
    gunicorn_conf.py sets PROMETHEUS_MULTIPROC_DIR before any server process imports this module), so whichever
    process answers a scrape reports the sum over all of them;
  - the service's metrics, read from Redis at scrape time: jobs waiting per RQ queue (LLEN), live workers,
    model load time, and the counters and histograms the workers add up in `keys.metrics()` (see
    shared/worker_metrics.py). Requests pay nothing for these: workers write them at most once a second.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

import orjson
import redis
from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from api.queue_metrics import QueueCollector, per_queue
from api.services import services
from shared import keys, rq_keys, worker_metrics
from shared.schema import ErrorCode, JobStatus

bp = Blueprint("metrics", __name__)

HTTP_REQUESTS = Counter(
    "inference_http_requests",
    "HTTP requests the API answered, by method, route and status.",
    ["method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "inference_http_request_seconds",
    "Seconds the API took to answer, by method and route (includes ?wait).",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
TENANT_REJECTIONS = Counter(
    "inference_tenant_rejections",
    "429s answered to an API key for its own limit (MAX_QUEUED_ROWS_PER_KEY or its max_queued_rows), by key name.",
    ["tenant"],
)
# Label values come from a fixed set (methods) or from our own routes, never from free client text, so a
# client cannot grow the number of series.
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


# The labelled children, by label values: `labels()` checks and converts its arguments and takes a lock on
# every call, which showed in the API's per-request profile. The set of keys is bounded as the labels are.
_counted: dict[tuple[str, str, int], Counter] = {}
_timed: dict[tuple[str, str], Histogram] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request (called once per request by api/request_context.py)."""
    method = method if method in METHODS else "other"
    counter = _counted.get((method, route, status))
    if counter is None:
        counter = _counted.setdefault((method, route, status), HTTP_REQUESTS.labels(method, route, str(status)))
    timer = _timed.get((method, route))
    if timer is None:
        timer = _timed.setdefault((method, route), HTTP_SECONDS.labels(method, route))
    counter.inc()
    timer.observe(seconds)


class ServiceCollector:
    """Reads the service-wide metrics from Redis when Prometheus scrapes (two round trips)."""

    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("inference_redis_up", "1 if Redis answered this scrape, else 0.")
        try:
            values, queued, workers, model = self._read()
        except redis.RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _queued_jobs(queued)
        yield GaugeMetricFamily("inference_workers", "Workers with a live heartbeat.", value=workers)
        load = GaugeMetricFamily(
            "inference_model_load_seconds",
            "Seconds the last started worker took to load and warm up its model.",
            labels=["model", "version"],
        )
        if model is not None:
            load.add_metric([str(model["name"]), str(model["version"])], float(model.get("load_seconds", 0)))
        yield load
        jobs = CounterMetricFamily(worker_metrics.JOBS_TOTAL, "Jobs that reached a final status.", labels=["status"])
        for status in (s for s in JobStatus if s.is_terminal):
            jobs.add_metric([status.value], values.get(worker_metrics.job_status_field(status.value), 0.0))
        yield jobs
        errors = CounterMetricFamily(
            worker_metrics.JOB_ERRORS, "Jobs that failed or expired, by error code.", labels=["code"]
        )
        for code in ErrorCode:
            errors.add_metric([code.value], values.get(worker_metrics.job_error_field(code.value), 0.0))
        yield errors
        by_model = CounterMetricFamily(
            worker_metrics.MODEL_JOBS,
            "Jobs that reached a final status, by model and the version that answered.",
            labels=["model", "version", "status"],
        )
        for name, value in sorted(values.items()):
            labels = worker_metrics.model_jobs_labels(name)
            if labels is not None:
                by_model.add_metric(list(labels), value)
        yield by_model
        for histogram in worker_metrics.HISTOGRAMS:
            family = HistogramMetricFamily(histogram.name, histogram.help)
            buckets, total = histogram.cumulative(values)
            family.add_metric([], buckets, total)
            yield family
        yield from _tenant_families(values)

    def _read(self) -> tuple[dict[str, float], dict[str, int], int, dict | None]:
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.metrics())
            pipe.smembers(rq_keys.QUEUES)
            pipe.zcount(keys.workers(), time.time(), "+inf")
            pipe.get(keys.model())
            raw, queue_keys, workers, model = pipe.execute()
        queue_keys = sorted(k.decode() for k in queue_keys)
        with self.connection.pipeline(transaction=False) as pipe:
            for key in queue_keys:
                pipe.llen(key)
            lengths = pipe.execute()
        prefix = rq_keys.queue("")
        queued = {k[len(prefix) :] if k.startswith(prefix) else k: n for k, n in zip(queue_keys, lengths)}
        values = {k.decode(): float(v) for k, v in raw.items()}
        return values, queued, int(workers), orjson.loads(model) if model else None


def _queued_jobs(queued: dict[str, int]) -> Iterator[Metric]:
    """Jobs waiting per queue, under their name and, for one release, under the deprecated old one."""
    names = {worker_metrics.QUEUED_JOBS: "Jobs waiting in each RQ queue (LLEN; rows: inference_queue_rows)."}
    for old, new in worker_metrics.RENAMED_METRICS.items():
        names[old] = f"Deprecated: use {new}, the same values; this name goes in the next release."
    for name, help_text in names.items():
        yield per_queue(name, help_text, queued)


def _tenant_families(values: dict[str, float]) -> Iterator[Metric]:
    """The workers' counters and wait histogram by API key name, for every name found in the hash (and
    anonymous traffic's always, so that the families have samples before the first job ends)."""
    names = {k.split(":", 1)[1] for k in values if k.startswith(worker_metrics.TENANT_JOBS + ":")}
    names.add(worker_metrics.ANONYMOUS_TENANT)
    jobs = CounterMetricFamily(
        worker_metrics.TENANT_JOBS, "Jobs that reached a final status, by API key name.", labels=["tenant"]
    )
    rows = CounterMetricFamily(worker_metrics.TENANT_ROWS, "Rows of those jobs, by API key name.", labels=["tenant"])
    wait = HistogramMetricFamily(
        worker_metrics.TENANT_WAIT, "Seconds jobs waited from enqueue to claim, by API key name.", labels=["tenant"]
    )
    for name in sorted(names):
        jobs.add_metric([name], values.get(worker_metrics.tenant_field(worker_metrics.TENANT_JOBS, name), 0.0))
        rows.add_metric([name], values.get(worker_metrics.tenant_field(worker_metrics.TENANT_ROWS, name), 0.0))
        buckets, total = worker_metrics.tenant_wait(name).cumulative(values)
        wait.add_metric([name], buckets, total)
    yield from (jobs, rows, wait)


class _ThisProcess:
    """The default registry as a collector, for an API not under a server (no multiprocess directory)."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


@bp.get("/metrics")
def scrape() -> Response:
    """Prometheus text exposition of the API's and the workers' metrics."""
    ext = services()
    registry = CollectorRegistry(auto_describe=False)
    if ext.settings.metrics_dir:
        MultiProcessCollector(registry, path=ext.settings.metrics_dir)
    else:
        registry.register(_ThisProcess())
    registry.register(ServiceCollector(ext.jobs.connection))
    registry.register(QueueCollector(ext.jobs.connection))
    return Response(generate_latest(registry), mimetype=None, content_type=CONTENT_TYPE_LATEST)
