"""`make bench`: measure the raw model limit, the classic recipe and the service, side by side.

Everything measured is started here on loopback and stopped afterwards. Prints a Markdown table and
the target ratios, and writes the full results as JSON under bench/results/.
BENCH_QUICK=1 shortens every point (≤ 2 minutes in all); BENCH_SECONDS sets seconds per point.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata

import httpx
import numpy as np
import orjson
import redis

from bench import (
    api_servers,
    bulk,
    bulk_storage,
    careful,
    ceiling,
    cost_report,
    load_runner,
    models,
    procstats,
    protocols,
    redis_only,
)
from bench.phase_meter import PhaseMeter
from bench.report import render_table, targets
from scripts import harness
from scripts.harness import Harness, free_port
from shared import keys
from shared.config import PROJECT_ROOT, Settings

QUICK = os.environ.get("BENCH_QUICK") == "1"
SECONDS = float(os.environ.get("BENCH_SECONDS", "2.5" if QUICK else "6"))
CLIENTS = (1, 8, 64)
RAW_BATCHES = (1, 8, 64, 256, 1024)
HEAVY_PATH = os.path.join(PROJECT_ROOT, "var", "bench", "heavy.keras")
LIGHT_PATH = os.path.join(PROJECT_ROOT, "models", "digits.keras")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def request_bodies() -> dict[str, bytes]:
    from sklearn.datasets import load_digits

    digit = load_digits().data[0].tolist()
    tokens = np.random.default_rng(0).integers(0, 8000, 128).tolist()
    return {"light": orjson.dumps({"instances": [digit]}), "heavy": orjson.dumps({"instances": [tokens]})}


def ensure_heavy_model() -> None:
    if not os.path.exists(HEAVY_PATH):
        log("building the heavy model (random weights)...")
        subprocess.run(
            [sys.executable, "-m", "bench.heavy_model", HEAVY_PATH], check=True, env=harness.child_env(Settings())
        )


def measure_raw(name: str, path: str) -> list[dict]:
    """The compiled call the worker uses, in this process: rows/s per batch size."""
    from worker.model.loader import load_model, zero_inputs

    model = load_model(path, name, "1")
    rows = []
    for batch in RAW_BATCHES:
        inputs = zero_inputs(model.signature, batch)
        if name == "heavy":
            inputs = {k: np.random.default_rng(1).integers(0, 8000, v.shape).astype(v.dtype) for k, v in inputs.items()}
        model.predict(inputs)
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < min(SECONDS, 3.0) or calls < 3:
            model.predict(inputs)
            calls += 1
        elapsed = time.perf_counter() - started
        rows.append(
            {
                "model": name,
                "system": "raw",
                "mode": f"batch {batch}",
                "clients": None,
                "throughput": batch * calls / elapsed,
                "p50_ms": elapsed / calls * 1000,
            }
        )
        log(f"raw {name} batch {batch}: {batch * calls / elapsed:.0f} rows/s")
    return rows


def load(
    url: str,
    mode: str,
    clients: int,
    body_file: str,
    seconds: float = SECONDS,
    path: str = "",
    headers: tuple[str, ...] = (),
) -> dict:
    """One closed-loop load run (bench/load_runner.py); loadgen's JSON. `path`: the route `wait` posts to
    (default /predict?wait=30); `headers`: extra request headers, "Name: value" each."""
    return load_runner.run(url, mode, clients, body_file, seconds, path, headers)


def summarize(result: dict) -> dict:
    return {
        "throughput": result["jobs"] / result["seconds"],
        **load_runner.percentiles(result),
        "jobs": result["jobs"],
        "requests": result["requests"],
        "errors": result["errors"],
    }


class Probe:
    """Counters before and after a point: CPU, peak RSS, Redis commands, worker batch stats."""

    def __init__(self, pids: dict[str, int], client: redis.Redis | None) -> None:
        self.pids, self.client = pids, client

    def snapshot(self) -> dict:
        snap = {"cpu": {k: procstats.cpu_seconds(p) for k, p in self.pids.items()}}
        if self.client is not None:
            stats = {k.decode(): float(v) for k, v in self.client.hgetall(keys.stats()).items()}
            snap["stats"] = stats
            snap["microbatches"] = self.client.llen(keys.microbatch_sizes())
            snap["commands"] = sum(v["calls"] for k, v in self.client.info("commandstats").items())
        return snap

    def start(self) -> dict:
        for pid in self.pids.values():
            procstats.reset_peak_rss(pid)
        return self.snapshot()

    def finish(self, before: dict, jobs: int) -> dict:
        after = self.snapshot()
        rows = max(jobs, 1)
        out = {
            "cpu_s_per_1k_rows": {k: (after["cpu"][k] - before["cpu"][k]) * 1000 / rows for k in self.pids},
            "peak_rss_mb": {k: procstats.peak_rss_mb(p) for k, p in self.pids.items()},
        }
        if self.client is not None:
            delta = {k: after["stats"].get(k, 0) - before["stats"].get(k, 0) for k in after["stats"]}
            batches = delta.get("microbatches", 0)
            out.update(
                {
                    "model_calls": delta.get("model_calls", 0),
                    "mean_batch": delta.get("rows", 0) / batches if batches else None,
                    "worker_round_trips_per_batch": delta.get("round_trips", 0) / batches if batches else None,
                    "redis_cmds_per_job": (after["commands"] - before["commands"]) / rows,
                }
            )
        return out


def measure_classic(name: str, path: str, body_file: str, processes: int) -> list[dict]:
    port = free_port()
    env = harness.child_env(Settings(), {"MODEL_PATH": path})
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            str(processes),
            "-b",
            f"127.0.0.1:{port}",
            "--timeout",
            "120",
            "bench.baselines.classic_app:app",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    rows = []
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_post(url, body_file, server)
        probe = Probe({"api": server.pid}, None)
        for clients in CLIENTS:
            before = probe.start()
            result = summarize(load(url, "classic", clients, body_file))
            rows.append(
                {
                    "model": name,
                    "system": "classic",
                    "mode": "predict",
                    "clients": clients,
                    **result,
                    **probe.finish(before, result["jobs"]),
                }
            )
            log(f"classic {name} {clients} clients: {result['throughput']:.0f} req/s p99 {result['p99_ms']:.0f} ms")
    finally:
        harness.stop(server)
    return rows


def _wait_post(url: str, body_file: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the classic app exited")
        try:
            if load(url, "classic", 1, body_file, seconds=0.2)["jobs"]:
                return
        except subprocess.CalledProcessError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the classic app did not answer")


def measure_service(name: str, path: str, body_file: str, workdir: str) -> list[dict]:
    settings = Settings.from_env({}).replace(
        redis_port=free_port(),
        api_port=free_port(),
        model_path=path,
        model_name=name,
        log_level="WARNING",
        grpc_port=free_port(),
        data_dir=os.path.join(workdir, f"service-{name}"),
    )
    service = Harness(settings)
    redis_server = service.start_redis()
    client = redis.Redis.from_url(service.settings.redis_url)
    api = service.start_api(wait_s=None)
    first = service.start_worker()
    if name == "light":
        service.start_grpc()
    rows = []
    try:
        url = service.base_url
        service.wait_ready(180)
        load(url, "wait", 8, body_file, seconds=1.0)  # warm the API processes
        pids = {"api": api.pid, "worker": first.pid, "redis": redis_server.process.pid}
        plan = [("wait", c) for c in CLIENTS] + [("poll", c) for c in CLIENTS] + [("flight", 64)]
        for mode, clients in plan:
            rows.append(_service_point(name, url, mode, clients, body_file, Probe(pids, client), "1 worker"))
        if name == "light":
            rows += protocols.measure(
                name,
                f"127.0.0.1:{settings.api_port}",
                f"127.0.0.1:{settings.grpc_port}",
                SECONDS,
                harness.child_env(Settings()),
                summarize,
            )
            rows += measure_bulk(url, body_file, workdir, api.pid)
        second = service.start_worker()
        _wait_workers(client, 2)
        pids2 = dict(pids, worker=first.pid, worker2=second.pid)
        rows.append(_service_point(name, url, "wait", 64, body_file, Probe(pids2, client), "2 workers"))
    finally:
        service.stop()
    return rows


def measure_bulk(url: str, body_file: str, workdir: str, api_pid: int) -> list[dict]:
    """Bulk rows, or a note that this build has no /batches endpoint."""
    probe = httpx.post(f"{url}/batches", content=b"", headers={"Content-Type": "application/x-npy"})
    if probe.status_code in (404, 405):
        log("bulk: POST /batches does not exist in this build; bulk rows skipped")
        return [{"model": "light", "system": "service", "mode": "bulk (missing)", "clients": None, "throughput": None}]
    files = bulk.write_inputs(workdir, bulk.BULK_ROWS // 4 if QUICK else bulk.BULK_ROWS)
    rows = bulk.run_bulk(url, files, body_file)
    big = os.path.join(workdir, "big.npy")
    bulk.write_big_npy(big, (256 if QUICK else 1024) * 1024 * 1024)
    memory = bulk.upload_memory(url, big, api_pid)
    os.remove(big)
    rows.append(
        {"model": "light", "system": "service", "mode": "upload memory", "clients": None, "throughput": None, **memory}
    )
    return rows


def _wait_workers(client: redis.Redis, count: int) -> None:
    deadline = time.monotonic() + 120
    while client.zcount(keys.workers(), time.time(), "+inf") < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count} workers did not register")
        time.sleep(0.2)


def _service_point(name, url, mode, clients, body_file, probe, workers) -> dict:
    before = probe.start()
    meter = PhaseMeter(probe.pids, probe.client)
    meter.start()
    result = summarize(load(url, mode, clients, body_file))
    row = {
        "model": name,
        "system": "service",
        "mode": mode,
        "clients": clients,
        "workers": workers,
        **result,
        **probe.finish(before, result["jobs"]),
        **meter.finish(result["jobs"]),
    }
    log(
        f"service {name} {mode} {clients} clients ({workers}): {result['throughput']:.0f} jobs/s "
        f"p50 {result['p50_ms']:.1f} p99 {result['p99_ms']:.1f} ms, mean batch {row.get('mean_batch') or 0:.1f}"
    )
    return row


def machine() -> dict:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    packages = {
        p: metadata.version(p) for p in ("tensorflow", "keras", "numpy", "flask", "gunicorn", "rq", "redis", "orjson")
    }
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "packages": packages,
    }


def main() -> int:
    started = time.monotonic()
    ensure_heavy_model()
    bodies = request_bodies()
    defaults = Settings.from_env({})
    results = {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "seconds_per_point": SECONDS,
        "quick": QUICK,
        "settings": {
            "api_processes": defaults.api_processes,
            "api_threads": defaults.api_threads,
            "max_microbatch_rows": defaults.max_microbatch_rows,
            "max_microbatch_delay_ms": defaults.max_microbatch_delay_ms,
        },
        "rows": [],
    }
    model_paths = {"light": LIGHT_PATH, "heavy": HEAVY_PATH}
    with tempfile.TemporaryDirectory() as workdir:
        for name, path in model_paths.items():
            body_file = os.path.join(workdir, f"{name}.json")
            with open(body_file, "wb") as f:
                f.write(bodies[name])
            results["rows"] += measure_raw(name, path)
            results["rows"] += measure_classic(name, path, body_file, defaults.api_processes)
            results["rows"] += careful.measure(name, path, body_file, CLIENTS, load, summarize)
            results["rows"] += measure_service(name, path, body_file, workdir)
        results["rows"] += api_servers.measure(os.path.join(workdir, "light.json"), workdir, load, summarize)
        # The queue path with a zero-cost model, and 64-row requests of the light model per route.
        results["rows"] += ceiling.measure(workdir, load, summarize, LIGHT_PATH)
        # Two models behind one worker against one worker each; p99 while a new version is loaded.
        results["rows"] += models.measure(workdir, load, summarize)
        # The bulk path on an S3 bucket (moto's server on loopback) against the local directory.
        results["rows"] += bulk_storage.measure(
            workdir, bulk.BULK_ROWS // 4 if QUICK else bulk.BULK_ROWS, (256 if QUICK else 1024) * 1024 * 1024
        )
    results["redis_only"] = redis_only.measure(jobs=256 if QUICK else 2048)
    raw64 = next((r["throughput"] for r in results["rows"] if r["model"] == "light" and r["mode"] == "batch 64"), None)
    results["targets"] = (
        targets(results["rows"]) + cost_report.targets(results["rows"]) + ceiling.targets(results["rows"], raw64)
    )
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    os.makedirs(os.path.join(PROJECT_ROOT, "bench", "results"), exist_ok=True)
    stamp = results["when"].replace(":", "").replace("-", "")
    out = os.path.join(PROJECT_ROOT, "bench", "results", f"bench-{stamp}.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    print(render_table(results))
    print(cost_report.render(results))
    log(f"wrote {out} ({results['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
