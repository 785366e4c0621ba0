"""Scrape-time metrics from a real Redis: queue rows and oldest age, bulk rows pending, webhook backlog and
outcomes, micro-batch round trips; and the API's readiness scopes (workers are not asked with scope=api)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from api import create_app
from api.jobs.redis_jobs import RedisJobs
from api.metrics import ServiceCollector
from api.queue_metrics import QueueCollector, read_view
from api.services import services_of
from shared import keys, webhooks
from shared.config import Settings
from shared.model_registry import ModelStatus, encode
from shared.tenant_backlog import read_backlog, render, served_lanes
from shared.tenants import Tenant, Tenants, fingerprint
from tests.support import free_port

pytestmark = pytest.mark.integration


def _url(redis_db) -> str:
    kwargs = redis_db.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}"


def _submit(redis_db, rows: int) -> str:
    jobs = RedisJobs(redis_db, Settings.from_env({}))
    return jobs.submit({"pixels": np.zeros((rows, 64), np.float32)})


def test_queue_rows_and_the_oldest_jobs_age_are_read_per_queue(redis_db):
    _submit(redis_db, 3)
    _submit(redis_db, 2)
    view = read_view(redis_db, now=time.time() + 10)
    assert view.rows == {"predict": 5}
    assert 9 < view.oldest_age_s["predict"] < 60


def test_an_empty_redis_reads_as_zeros(redis_db):
    view = read_view(redis_db)
    assert (view.rows, view.bulk_rows_pending, view.webhooks_waiting, view.stats) == ({}, 0, 0, {})


def test_bulk_rows_pending_counts_only_rows_not_yet_run_in_live_batches(redis_db):
    for batch_id, status, total, done, failed in [
        ("a", "in_progress", 100, 30, 5),
        ("b", "queued", 50, 0, 0),
        ("c", "completed", 70, 70, 0),
    ]:
        redis_db.hset(
            keys.batch(batch_id),
            mapping={"status": status, "total_rows": total, "done_rows": done, "failed_rows": failed},
        )
        redis_db.zadd(keys.batch_retirement(), {batch_id: time.time() + 60})
    view = read_view(redis_db)
    assert view.bulk_rows_pending == 65 + 50
    assert view.batches == {"in_progress": 1, "queued": 1, "completed": 1}


def test_webhook_backlog_failures_and_given_up_deliveries_are_counted(redis_db):
    with redis_db.pipeline() as pipe:
        webhooks.enqueue(pipe, "job", "j1", "http://receiver.example/hook", 60)
        pipe.execute()
    deliveries = webhooks.DeliveryQueue(redis_db, max_attempts=2, backoff_s=0, hold_s=30)
    (first,) = deliveries.take_due()
    assert deliveries.failed(first) is True
    assert read_view(redis_db).webhooks_waiting == 1
    (second,) = deliveries.take_due()
    assert deliveries.failed(second) is False
    view = read_view(redis_db)
    assert (view.webhooks_waiting, view.webhook_calls["failed"], view.webhooks_given_up) == (0, 2, 1)


def test_the_collector_renders_every_family_with_its_labels(redis_db):
    _submit(redis_db, 4)
    redis_db.hset(keys.stats(), mapping={"microbatches": 10, "round_trips": 25})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(redis_db))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(generate_latest(registry).decode())
        for s in f.samples
    }
    assert samples[("inference_queue_rows", (("queue", "predict"),))] == 4
    assert ("inference_queue_oldest_job_age_seconds", (("queue", "predict"),)) in samples
    assert samples[("inference_microbatches_total", ())] == 10
    assert samples[("inference_redis_round_trips_total", ())] == 25
    assert samples[("inference_batches", (("status", "expired"),))] == 0
    assert samples[("inference_webhook_calls_total", (("outcome", "delivered"),))] == 0
    assert samples[("inference_tenant_queued_rows", (("lane", "predict"), ("tenant", "-")))] == 4


def test_each_keys_backlog_is_visible_by_name_in_the_metrics_and_the_operator_view(redis_db):
    keyring = Tenants({fingerprint(n): Tenant(n, fingerprint(n)) for n in ("team-a", "team-b")})
    jobs = RedisJobs(redis_db, Settings.from_env({}), keyring)
    for name, rows in (("team-a", 3), ("team-a", 1), ("team-b", 2)):
        jobs.submit({"pixels": np.zeros((rows, 64), np.float32)}, owner=fingerprint(name))
    view = read_view(redis_db)
    assert view.rows == {"predict~team-a": 4, "predict~team-b": 2}  # RQ queues: `rq info` lists them too
    backlog = {b.tenant: b for b in read_backlog(redis_db, ["predict", "predict-bulk"], now=time.time() + 5)}
    assert set(backlog) == {"team-a", "team-b"}
    assert (backlog["team-a"].jobs, backlog["team-a"].rows, backlog["team-a"].in_ring) == (2, 4, True)
    assert backlog["team-b"].oldest_age_s > 4
    assert "team-a" in render(list(backlog.values()))


def test_running_rows_are_read_by_lane_and_key_from_the_leases_of_claimed_jobs(redis_db):
    from worker.redis_source import claim_jobs  # the worker's real claim (claim.lua); imports TensorFlow

    keyring = Tenants({fingerprint(n): Tenant(n, fingerprint(n)) for n in ("team-a", "team-b")})
    jobs = RedisJobs(redis_db, Settings.from_env({}), keyring)
    for name, rows in (("team-a", 3), ("team-b", 2), ("team-b", 5)):
        jobs.submit({"pixels": np.zeros((rows, 64), np.float32)}, owner=fingerprint(name))
    claimed = claim_jobs(
        redis_db, ["predict"], [2], quanta=[256], weights={}, most=2, room=256, token="t1",
        lease_until=time.time() + 60, worker_name="w", busy=False,
    )  # fmt: skip
    assert len(claimed) == 2  # team-a's job and team-b's first: one turn each
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(redis_db))
    samples = {
        (s.name, s.labels["tenant"]): s.value
        for f in text_string_to_metric_families(generate_latest(registry).decode())
        for s in f.samples
        if s.name == "inference_tenant_running_rows"
    }
    assert samples == {("inference_tenant_running_rows", "team-a"): 3, ("inference_tenant_running_rows", "team-b"): 2}


def test_the_operator_view_reads_the_lanes_of_every_model_the_workers_advertise(redis_db):
    other = ModelStatus("two", "predict-two", "predict-bulk-two", {}, {})
    redis_db.hset(keys.model_registry(), "w1", encode([other], {}))
    lanes = served_lanes(redis_db, ["predict", "predict-bulk"])
    assert lanes == ["predict", "predict-bulk", "predict-two", "predict-bulk-two"]


def test_queued_jobs_count_jobs_and_their_deprecated_old_name_reports_the_same_for_one_release(redis_db):
    _submit(redis_db, 3)
    _submit(redis_db, 1)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(redis_db))
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    queued = {s.labels["queue"]: s.value for s in families["inference_queued_jobs"].samples}
    assert queued == {"predict": 2}  # jobs; the 4 rows are inference_queue_rows, the queue depth
    old = families["inference_queue_depth"]
    assert {s.labels["queue"]: s.value for s in old.samples} == queued
    assert old.documentation.startswith("Deprecated: use inference_queued_jobs")


def test_api_readiness_asks_redis_but_not_the_workers(redis_db):
    client = create_app(Settings.from_env({}).replace(redis_url=_url(redis_db))).test_client()
    assert client.get("/readyz").status_code == 503  # no worker: the service cannot predict yet
    response = client.get("/readyz?scope=api")
    assert response.status_code == 200 and response.get_json() == {"ready": True, "scope": "api"}


def test_api_readiness_fails_when_redis_does_not_answer():
    client = create_app(Settings.from_env({}).replace(redis_url=f"redis://127.0.0.1:{free_port()}/0")).test_client()
    response = client.get("/readyz?scope=api")
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "not_ready"


def test_an_unknown_readiness_scope_is_a_400_naming_the_field(redis_db):
    client = create_app(Settings.from_env({}).replace(redis_url=_url(redis_db))).test_client()
    response = client.get("/readyz?scope=everything")
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "scope"


def test_a_full_redis_answers_503_not_500(redis_db, monkeypatch):
    app = create_app(Settings.from_env({}).replace(redis_url=_url(redis_db)))

    def full() -> None:
        raise redis.ResponseError("OOM command not allowed when used memory > 'maxmemory'.")

    monkeypatch.setattr(services_of(app).jobs.connection, "ping", full)
    response = app.test_client().get("/readyz?scope=api")
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert response.get_json()["error"]["message"] == "Redis is full; try again later"


def test_cancelled_jobs_are_counted(redis_db, redis_url):
    jobs = RedisJobs(redis_db, Settings.from_env({}))
    job_id = jobs.submit({"pixels": np.zeros((1, 64), np.float32)}, request_id="r")
    jobs.cancel(job_id)
    assert float(redis_db.hget(keys.metrics(), "inference_jobs_total:canceled")) == 1
