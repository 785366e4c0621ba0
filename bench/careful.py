"""The careful-recipe baseline of `make bench` (bench/baselines/careful_app.py under gunicorn, 2 processes ×
4 threads), measured like the classic recipe: closed-loop clients POSTing one row each."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import httpx

from bench import procstats
from scripts import harness as stack
from scripts.harness import free_port
from shared.config import PROJECT_ROOT, Settings

PROCESSES = 2
THREADS = 4
START_TIMEOUT_S = 180

Load = Callable[..., dict]  # bench.run.load: (url, mode, clients, body_file, seconds=...) → loadgen's JSON
Summarize = Callable[[dict], dict]  # bench.run.summarize: loadgen JSON → throughput and percentiles


def start(path: str) -> tuple[subprocess.Popen, str]:
    """gunicorn serving the careful app for the model at `path`; (process, base URL)."""
    port = free_port()
    env = stack.child_env(Settings(), {"MODEL_PATH": path})
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            str(PROCESSES),
            "--threads",
            str(THREADS),
            "-k",
            "gthread",
            "-b",
            f"127.0.0.1:{port}",
            "--timeout",
            "120",
            "bench.baselines.careful_app:app",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return server, f"http://127.0.0.1:{port}"


def wait_ready(url: str, body: bytes, process: subprocess.Popen) -> None:
    """Until both processes have loaded the model, a POST may be refused or time out: retry until one answers."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the careful app exited with {process.returncode}")
        try:
            if (
                httpx.post(
                    f"{url}/predict", content=body, headers={"Content-Type": "application/json"}, timeout=30
                ).status_code
                == 200
            ):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the careful app did not answer within {START_TIMEOUT_S} s")


def measure(
    name: str, path: str, body_file: str, clients: tuple[int, ...], load: Load, summarize: Summarize
) -> list[dict]:
    """One row per client count: system "careful", mode "predict"."""
    server, url = start(path)
    rows = []
    try:
        with open(body_file, "rb") as f:
            wait_ready(url, f.read(), server)
        load(url, "classic", 8, body_file, seconds=1.0)  # both processes warm
        for n in clients:
            cpu = procstats.cpu_seconds(server.pid)
            procstats.reset_peak_rss(server.pid)
            result = summarize(load(url, "classic", n, body_file))
            jobs = max(result["jobs"], 1)
            rows.append(
                {
                    "model": name,
                    "system": "careful",
                    "mode": "predict",
                    "clients": n,
                    **result,
                    "cpu_s_per_1k_rows": {"api": (procstats.cpu_seconds(server.pid) - cpu) * 1000 / jobs},
                    "peak_rss_mb": {"api": procstats.peak_rss_mb(server.pid)},
                }
            )
            print(
                f"careful {name} {n} clients: {result['throughput']:.0f} req/s p99 {result['p99_ms']:.1f} ms",
                file=sys.stderr,
                flush=True,
            )
    finally:
        stack.stop(server)
    return rows
