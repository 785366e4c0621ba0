"""The API's CPU per request under two WSGI servers, on the same Flask app, model, Redis and worker:
gunicorn gthread (api/gunicorn_conf.py) and granian's WSGI mode (Rust HTTP, a thread pool running the
Flask app; the default, what `make run` starts). Light model, 64 closed-loop `?wait` clients; the API's CPU comes
from /proc (its whole process tree), divided by the requests answered.

    python -m bench.api_servers [--seconds 6] [--clients 64]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable

from bench import load_runner, procstats
from scripts import harness as stack
from scripts.embedded_redis import EmbeddedRedis
from scripts.harness import Harness, free_port
from shared.config import PROJECT_ROOT, Settings

SERVERS = ("gunicorn", "granian")
LIGHT_PATH = os.path.join(PROJECT_ROOT, "models", "digits.keras")

Load = Callable[..., dict]
Summarize = Callable[[dict], dict]


def measure(
    body_file: str, workdir: str, load: Load, summarize: Summarize, clients: int = 64, seconds: float | None = None
) -> list[dict]:
    """One row per server: throughput, latency and the API's CPU per request (ms)."""
    redis_server = EmbeddedRedis(free_port(), os.path.join(workdir, "redis-api-servers")).start()
    base = Settings.from_env({}).replace(
        redis_url=redis_server.url, model_path=LIGHT_PATH, model_name="light", log_level="WARNING"
    )
    workers = Harness(base)
    worker = workers.start_worker().process
    rows = []
    try:
        for server in SERVERS:
            settings = base.replace(api_port=free_port(), api_server=server)
            service = Harness(settings)
            api = service.start_api(wait_s=None)
            try:
                url = f"http://127.0.0.1:{settings.api_port}"
                stack.wait_http(f"{url}/readyz", 180, worker)
                load(url, "wait", 8, body_file, seconds=1.0)  # warm every API process
                cpu = procstats.cpu_seconds(api.pid)
                raw = load(url, "wait", clients, body_file, **({"seconds": seconds} if seconds else {}))
                used = procstats.cpu_seconds(api.pid) - cpu
                result = summarize(raw)
                requests = max(raw["requests"], 1)
                rows.append(
                    {
                        "model": "light",
                        "system": "service",
                        "mode": f"wait ({server})",
                        "clients": clients,
                        "api_server": server,
                        **result,
                        "api_cpu_ms_per_request": used * 1000 / requests,
                        "api_cores": used / raw["seconds"],
                    }
                )
                print(
                    f"api under {server}: {result['throughput']:.0f} req/s, p99 {result['p99_ms']:.1f} ms, "
                    f"API CPU {used * 1000 / requests:.2f} ms/request",
                    file=sys.stderr,
                    flush=True,
                )
            finally:
                service.stop()
    finally:
        workers.stop()
        redis_server.stop()
    return rows


def verdict(rows: list[dict]) -> str:
    """Which server used less API CPU per request, by how much, and whether latency agreed."""
    by = {r["api_server"]: r for r in rows}
    if set(by) != set(SERVERS):
        return "API servers: not measured"
    g, r = by["gunicorn"], by["granian"]
    ratio = r["api_cpu_ms_per_request"] / g["api_cpu_ms_per_request"] if g["api_cpu_ms_per_request"] else float("nan")
    return (
        f"API CPU per request: gunicorn gthread {g['api_cpu_ms_per_request']:.2f} ms, granian wsgi "
        f"{r['api_cpu_ms_per_request']:.2f} ms ({ratio:.2f}×); {g['throughput']:.0f} vs {r['throughput']:.0f} "
        f"req/s, p99 {g['p99_ms']:.1f} vs {r['p99_ms']:.1f} ms"
    )


def _load(url: str, mode: str, clients: int, body_file: str, seconds: float = 6.0) -> dict:
    return load_runner.run(url, mode, clients, body_file, seconds)


def main() -> int:
    from bench.run import request_bodies, summarize

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--clients", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        body_file = os.path.join(workdir, "light.json")
        with open(body_file, "wb") as f:
            f.write(request_bodies()["light"])
        started = time.monotonic()
        rows = measure(body_file, workdir, _load, summarize, args.clients, args.seconds)
    print(verdict(rows))
    print(f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
