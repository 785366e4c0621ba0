"""Helpers for tests that run the real service: free ports, waits, and a service (the harness's API + workers on
one Redis database) with the clients tests read it through."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import redis

from scripts import harness
from scripts.harness import Child, Harness, free_port
from shared import keys, rq_keys
from shared.config import Settings
from shared.model_registry import ModelStatus, VersionState, VersionStatus, encode
from shared.signature import ModelSignature

STOPPED_WORKER = "stand-in-worker"  # the live worker that advertise_model and copy_models pretend exists


def wait_until(condition: Callable[[], object], timeout_s: float = 10.0, interval_s: float = 0.05) -> object:
    """Poll `condition` until it returns something truthy; fail the test when time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(interval_s)


class Service:
    """The real API (granian, or gunicorn: API_SERVER) and real workers against one Redis database, with logs in `log_dir`: the
    harness's processes, plus what tests read (an HTTP client, the Redis client, logs)."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.harness = Harness(settings, log_dir)
        self.base_url = self.harness.base_url
        self.http = httpx.Client(base_url=self.base_url, timeout=60)
        self.redis = redis.Redis.from_url(settings.redis_url)

    @property
    def api(self) -> Child | None:
        return self.harness.api

    @property
    def workers(self) -> list[Child]:
        return self.harness.workers

    def start_api(self) -> Service:
        self.harness.start_api()
        return self

    def start_grpc(self) -> Service:
        """Start the gRPC server process and wait until it accepts connections."""
        import grpc

        self.harness.start_grpc()
        with grpc.insecure_channel(self.grpc_target) as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=60)
            except grpc.FutureTimeoutError:
                raise AssertionError(f"the gRPC server did not start: {self.logs()}") from None
        return self

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.settings.grpc_port}"

    def start_worker(self, wait: bool = True, **env: str) -> Child:
        """Start a worker; with `wait`, return once it is registered as live."""
        before = self.live_worker_names()
        worker = self.harness.start_worker(env)
        if wait:
            wait_until(lambda: self.live_worker_names() - before or not worker.running, 90)
            assert worker.running, f"worker exited with {worker.returncode}: {self.logs()}"
        return worker

    def live_worker_processes(self) -> list[Child]:
        return [w for w in self.workers if w.running]

    def signal_worker(self, worker: Child, sig: int) -> None:
        """Send `sig` (SIGKILL, SIGSTOP, SIGCONT...) to a worker's process group; SIGKILL waits for it to go."""
        self.harness.kill(worker, sig)

    @contextmanager
    def frozen_worker(self) -> Iterator[None]:
        """The one live worker stopped (SIGSTOP) for the block, so that what is queued stays queued."""
        [worker] = self.live_worker_processes()
        self.signal_worker(worker, signal.SIGSTOP)
        try:
            yield
        finally:
            self.signal_worker(worker, signal.SIGCONT)

    def stop_process(self, child: Child, sig: int = signal.SIGTERM) -> int | None:
        """Signal one process (the API or a worker) and wait for its exit status."""
        return harness.stop(child.process, sig=sig)

    def key(self, name: str) -> str:
        """A key of shared/keys.py, built with this test process's REDIS_KEY_PREFIX, as the service names it."""
        return self.settings.redis_key_prefix + name.removeprefix(keys.PREFIX)

    def rq_key(self, name: str) -> str:
        """A key of shared/rq_keys.py, built with this test process's RQ_KEY_PREFIX, as the service names it."""
        return self.settings.rq_key_prefix + name.removeprefix(rq_keys.PREFIX)

    def job_status(self, job_id: str) -> str | None:
        """The job's status as RQ's job hash has it (None once the hash is gone)."""
        raw = self.redis.hget(self.rq_key(rq_keys.job(job_id)), "status")
        return raw.decode() if raw is not None else None

    def documents(self, job_id: str) -> list[bytes]:
        """The job's result as a list: [] until it ended, then exactly one."""
        result = self.redis.hget(self.rq_key(rq_keys.job(job_id)), keys.JOB_RESULT)
        return [] if result is None else [result]

    def live_workers(self) -> int:
        return self.redis.zcount(self.key(keys.workers()), time.time(), "+inf")

    def live_worker_names(self) -> set[bytes]:
        return set(self.redis.zrangebyscore(self.key(keys.workers()), time.time(), "+inf"))

    def stop(self) -> None:
        """SIGTERM everything at once, then wait (SIGKILL what is still running after 15 s)."""
        self.http.close()  # an open keep-alive connection would hold up the API's graceful stop for seconds
        self.harness.stop(timeout_s=15)

    def logs(self) -> str:
        return self.harness.log_text()

    def predict(self, rows, wait: float = 10.0) -> httpx.Response:
        return self.http.post("/predict", params={"wait": wait}, json={"instances": rows})

    def stats(self) -> dict[str, float]:
        return {k.decode(): float(v) for k, v in self.redis.hgetall(self.key(keys.stats())).items()}

    def upload(self, body: bytes, content_type: str, **params) -> httpx.Response:
        """POST /batches with a raw body."""
        return self.http.post("/batches", params=params, content=body, headers={"Content-Type": content_type})

    def wait_batch(
        self,
        batch_id: str,
        timeout_s: float = 60.0,
        statuses: tuple[str, ...] = ("completed", "failed", "cancelled", "expired"),
    ) -> dict:
        """Poll the batch until its status is one of `statuses`; returns its document."""

        def ended():
            doc = self.http.get(f"/batches/{batch_id}").json()
            return doc if doc["status"] in statuses else None

        return wait_until(ended, timeout_s, 0.1)

    def api_worker_pids(self) -> list[int]:
        """The API's server processes: the children of granian's serving process (but multiprocessing's resource
        tracker, which it starts too) or of gunicorn's master."""
        assert self.api is not None, "the API was not started"
        with open(f"/proc/{self.api.pid}/task/{self.api.pid}/children") as f:
            children = [int(pid) for pid in f.read().split()]
        return [pid for pid in children if _is_server_process(pid)]


def _is_server_process(pid: int) -> bool:
    """Whether a child of the API's process is one of its server processes (live, not the resource tracker)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"resource_tracker" not in f.read()
    except OSError:  # gone meanwhile
        return False


def service_settings(redis_url: str, db: int, **overrides) -> Settings:
    """Settings for a test service on database `db` of the test Redis, on a free API port."""
    base = Settings.from_env({})
    url = redis_url.rsplit("/", 1)[0] + f"/{db}"
    values = dict(
        redis_url=url,
        api_port=free_port(),
        grpc_port=free_port(),
        api_processes=1,
        api_threads=16,
        heartbeat_s=1.0,
        log_level="INFO",
        data_dir=os.environ.get("TMPDIR", "/tmp"),
    )
    values.update(overrides)
    return base.replace(**values)


def advertise_model(
    connection: redis.Redis, signature: ModelSignature, queue: str = "predict", bulk_queue: str = "predict-bulk"
) -> None:
    """Advertise a model as a worker that has since stopped would have (its registry document), for an API with
    no worker: jobs are accepted and queued, none runs."""
    version = VersionStatus(signature.version, VersionState.AVAILABLE, "", signature)
    document = encode([ModelStatus(signature.name, queue, bulk_queue, {}, {signature.version: version})], {})
    connection.hset(keys.model_registry(), STOPPED_WORKER, document)


def copy_models(source: redis.Redis, target: redis.Redis) -> None:
    """Advertise in `target` what the workers of `source` serve, for an API on another Redis with no worker."""
    for worker, models in source.hgetall(keys.model_registry()).items():
        target.hset(keys.model_registry(), worker, models)
