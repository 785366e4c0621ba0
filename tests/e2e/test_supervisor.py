"""`make run`'s supervisor (python -m scripts.stack) as a real process with its embedded Redis: a killed
worker is replaced, a worker that cannot load its model stops the stack with a message, and Ctrl-C stops
the workers (which deregister) before Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from scripts.embedded_redis import EmbeddedRedis
from scripts.harness import child_env, free_port
from shared import keys, rq_keys
from shared.config import PROJECT_ROOT, Settings
from tests.support import wait_until

pytestmark = pytest.mark.e2e


@dataclass
class RunningStack:
    """`python -m scripts.stack` started as a terminal would start `make run`, with its output in a file."""

    process: subprocess.Popen
    settings: Settings
    output: Path

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def redis(self) -> redis.Redis:
        return redis.Redis(port=self.settings.redis_port, socket_timeout=5)

    def live_worker_pids(self) -> set[int]:
        """Pids of the running workers our live-workers key lists (names are host.pid.random)."""
        try:
            names = self.redis().zrangebyscore(keys.workers(), time.time(), "+inf")
        except redis.ConnectionError:
            return set()
        return {pid for pid in (int(name.decode().split(".")[-2]) for name in names) if os.path.exists(f"/proc/{pid}")}

    def ctrl_c(self) -> int:
        """SIGINT to the supervisor's process group, as the terminal sends it; returns its exit status."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=60)


def start_stack(tmp_path: Path, **overrides) -> RunningStack:
    settings = Settings.from_env({}).replace(
        redis_port=free_port(),
        api_port=free_port(),
        data_dir=str(tmp_path),
        heartbeat_s=1.0,
        api_processes=1,
        api_threads=8,
        **overrides,
    )
    output = tmp_path / "make-run.log"
    with open(output, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "scripts.stack"],
            cwd=PROJECT_ROOT,
            env=child_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return RunningStack(process, settings, output)


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    stack = start_stack(tmp_path_factory.mktemp("make-run"))
    try:
        wait_until(lambda: "\nready " in stack.text() or stack.process.poll() is not None, 120)
        assert stack.process.poll() is None, stack.text()
        yield stack
    finally:
        if stack.process.poll() is None:
            os.killpg(stack.process.pid, signal.SIGTERM)
            stack.process.wait(timeout=60)


def test_a_worker_killed_with_sigkill_is_replaced_and_the_new_one_serves(running, digits):
    [victim] = wait_until(running.live_worker_pids, 30)
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: running.live_worker_pids() - {victim}, 60)
    x, _ = digits
    with httpx.Client(base_url=f"http://127.0.0.1:{running.settings.api_port}", timeout=30) as http:
        answer = http.post("/predict", params={"wait": 20}, json={"instances": [x[0].tolist()]})
    assert answer.status_code == 200 and answer.json()["status"] == "finished"
    assert f"pid {victim} died (signal SIGKILL)" in running.text()


def test_ctrl_c_stops_the_workers_first_and_each_deregisters_before_redis_stops(running):
    live = running.live_worker_pids()
    assert live
    assert running.ctrl_c() == 0
    text = running.text()
    assert "stopped without deregistering" not in text
    assert text.count("received SIGTERM: finishing the work in hand") >= len(live)
    # Redis stopped last and kept its append-only file: start it again on the same data and look.
    server = EmbeddedRedis(running.settings.redis_port, os.path.join(running.settings.data_dir, "redis")).start()
    try:
        client = redis.Redis(port=server.port)
        names = {n.decode() for n in client.zrange(keys.workers(), 0, -1)}
        rq_workers = {n.decode() for n in client.smembers(rq_keys.WORKERS)}
        assert not any(f".{pid}." in name for pid in live for name in names | rq_workers), (names, rq_workers)
    finally:
        server.stop()


def test_a_worker_that_cannot_load_its_model_stops_make_run_and_says_why(tmp_path):
    stack = start_stack(tmp_path, model_path="/nonexistent/model.keras")
    try:
        assert stack.process.wait(timeout=120) == 1
    finally:
        if stack.process.poll() is None:
            os.killpg(stack.process.pid, signal.SIGKILL)
    text = stack.text()
    assert "cannot load its model (exit status 3" in text and "/nonexistent/model.keras" in text
    assert "started again" not in text
