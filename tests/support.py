"""Helpers for tests that run the real service: free ports, a service (API + workers) on one Redis db."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import redis
from rq.job import Job

from scripts import stack
from scripts.stack import free_port
from shared import keys
from shared.config import Settings


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
    """The real API (gunicorn) and real workers against one Redis database, with logs in `log_dir`."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.api: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.base_url = f"http://127.0.0.1:{settings.api_port}"
        self.http = httpx.Client(base_url=self.base_url, timeout=60)
        self.redis = redis.Redis.from_url(settings.redis_url)

    def _log(self, name: str):
        return open(self.log_dir / f"{name}.log", "ab")

    def start_api(self) -> "Service":
        self.api = stack.start_api(self.settings, self._log("api"))
        stack.wait_http(f"{self.base_url}/healthz", 30, self.api)
        return self

    def start_worker(self, wait: bool = True, **env: str) -> subprocess.Popen:
        """Start a worker; with `wait`, return once it is registered as live."""
        before = self.live_worker_names()
        worker = stack.start_worker(self.settings, self._log(f"worker-{len(self.workers)}"), env)
        self.workers.append(worker)
        if wait:
            wait_until(lambda: self.live_worker_names() - before or worker.poll() is not None, 90)
            assert worker.poll() is None, f"worker exited with {worker.returncode}: {self.logs()}"
        return worker

    def live_worker_processes(self) -> list[subprocess.Popen]:
        return [w for w in self.workers if w.poll() is None]

    def signal_worker(self, worker: subprocess.Popen, sig: int) -> None:
        """Send `sig` (SIGKILL, SIGSTOP, SIGCONT...) to a worker's process group."""
        os.killpg(worker.pid, sig)
        if sig == signal.SIGKILL:
            worker.wait(timeout=10)

    def job_status(self, job_id: str) -> str | None:
        """The job's status as RQ's job hash has it (None once the hash is gone)."""
        raw = self.redis.hget(Job.key_for(job_id), "status")
        return raw.decode() if raw is not None else None

    def documents(self, job_id: str) -> list[bytes]:
        """Every final document published for the job (exactly one once it is done)."""
        return self.redis.lrange(keys.result(job_id), 0, -1)

    def live_workers(self) -> int:
        return self.redis.zcount(keys.workers(), time.time(), "+inf")

    def live_worker_names(self) -> set[bytes]:
        return set(self.redis.zrangebyscore(keys.workers(), time.time(), "+inf"))

    def stop(self) -> None:
        """SIGTERM everything at once, then wait (SIGKILL what is still running after 15 s)."""
        self.http.close()  # an open keep-alive connection would hold up gunicorn's graceful stop for seconds
        processes = [p for p in self.workers + ([self.api] if self.api else []) if p.poll() is None]
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                stack.stop(process, sig=signal.SIGKILL)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(self.log_dir.glob("*.log")))

    def predict(self, rows, wait: float = 10.0) -> httpx.Response:
        return self.http.post("/predict", params={"wait": wait}, json={"instances": rows})

    def stats(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self.redis.hgetall(keys.stats()).items()}

    def upload(self, body: bytes, content_type: str, **params) -> httpx.Response:
        """POST /batches with a raw body."""
        return self.http.post("/batches", params=params, content=body, headers={"Content-Type": content_type})

    def wait_batch(self, batch_id: str, timeout_s: float = 60.0,
                   statuses: tuple[str, ...] = ("completed", "failed", "cancelled", "expired")) -> dict:
        """Poll the batch until its status is one of `statuses`; returns its document."""
        def ended():
            doc = self.http.get(f"/batches/{batch_id}").json()
            return doc if doc["status"] in statuses else None

        return wait_until(ended, timeout_s, 0.1)

    def api_worker_pids(self) -> list[int]:
        """The gunicorn worker processes (children of the API's master)."""
        with open(f"/proc/{self.api.pid}/task/{self.api.pid}/children") as f:
            return [int(pid) for pid in f.read().split()]


def service_settings(redis_url: str, db: int, **overrides) -> Settings:
    """Settings for a test service on database `db` of the test Redis, on a free API port."""
    base = Settings.from_env({})
    url = redis_url.rsplit("/", 1)[0] + f"/{db}"
    values = dict(redis_url=url, api_port=free_port(), api_processes=1, api_threads=16, heartbeat_s=1.0,
                  log_level="INFO", data_dir=os.environ.get("TMPDIR", "/tmp"))
    values.update(overrides)
    return base.replace(**values)
