"""The queue path's ceiling, and multi-row requests: what it takes to feed an accelerator.

Ceiling: the service as `make run` starts it (the real API, Redis and worker loop) with a zero-cost model
stand-in (bench/null_model.py, a test double for the model only), 64 closed-loop `?wait` clients, one-row
and 64-row requests. Each point reports requests and rows per second, and the CPU each part took per
request (API, worker, Redis, from /proc); requests per API core and per worker core are the numbers to
size by (docs/deployment.md, "API cores and workers per accelerator").

Multi-row: 64-row requests of the light model through POST /predict, TF Serving's REST predict and
KServe v2's REST infer, rows/s against the raw model at batch 64.

    python -m bench.ceiling [--seconds 6]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable

import orjson

from bench import procstats
from scripts import harness
from scripts.harness import Harness, free_port
from shared.config import PROJECT_ROOT, Settings

NULL_PATH = os.path.join(PROJECT_ROOT, "var", "bench", "null.keras")
CLIENTS = 64
MULTI_ROWS = 64
PARTS = ("api", "worker", "redis")

Load = Callable[..., dict]
Summarize = Callable[[dict], dict]


def ensure_null_model() -> None:
    if not os.path.exists(NULL_PATH):
        subprocess.run(
            [sys.executable, "-m", "bench.null_model", NULL_PATH], check=True, env=harness.child_env(Settings())
        )


def bodies(model: str, rows: int) -> dict[str, tuple[str, bytes, tuple[str, ...]]]:
    """Route name → (path, body, extra headers) for `rows` digits rows."""
    from sklearn.datasets import load_digits

    x = load_digits().data[:rows].astype("float32")
    tensor = {"name": "pixels", "shape": list(x.shape), "datatype": "FP32"}
    kserve = {"inputs": [{**tensor, "data": x.ravel().tolist()}]}
    # KServe v2's binary tensor extension: a JSON header naming the tensor's byte size, then the raw bytes.
    header = orjson.dumps(
        {
            "inputs": [{**tensor, "parameters": {"binary_data_size": x.nbytes}}],
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
        }
    )
    return {
        "predict": ("/predict?wait=30", orjson.dumps({"instances": x.tolist()}), ()),
        "http tfserving": (f"/v1/models/{model}:predict", orjson.dumps({"instances": x.tolist()}), ()),
        "http kserve": (f"/v2/models/{model}/infer", orjson.dumps(kserve), ()),
        "http kserve binary": (
            f"/v2/models/{model}/infer",
            header + x.tobytes(),
            (f"Inference-Header-Content-Length: {len(header)}",),
        ),
    }


def point(
    service: Harness,
    pids: dict[str, int],
    route: str,
    request: tuple[str, bytes, tuple[str, ...], int],
    load: Load,
    summarize: Summarize,
    workdir: str,
    seconds: float | None,
) -> dict:
    """One load point: throughput in rows/s, and each part's CPU per request and requests per core."""
    path, body, headers, rows = request
    body_file = os.path.join(workdir, "ceiling-body.json")
    with open(body_file, "wb") as f:
        f.write(body)
    load(service.base_url, "wait", 8, body_file, seconds=1.0, path=path, headers=headers)  # warm
    before = {k: procstats.cpu_seconds(p) for k, p in pids.items()}
    timing = {"seconds": seconds} if seconds else {}
    raw = load(service.base_url, "wait", CLIENTS, body_file, path=path, headers=headers, **timing)
    used = {k: procstats.cpu_seconds(p) - before[k] for k, p in pids.items()}
    result = summarize(raw)
    requests = max(result["jobs"], 1)
    row = {
        "system": "service",
        "clients": CLIENTS,
        "rows_per_request": rows,
        **result,
        "requests_per_s": result["throughput"],
        "throughput": result["throughput"] * rows,
        "cpu_ms_per_request": {k: used[k] * 1000 / requests for k in pids},
        "cpu_s_per_1k_rows": {k: used[k] * 1000 / (requests * rows) for k in pids},
        "requests_per_core": {k: requests / used[k] if used[k] > 0 else None for k in pids},
    }
    print(f"ceiling {route} {rows}-row: {row['throughput']:.0f} rows/s, {describe(row)}", file=sys.stderr, flush=True)
    return row


def measure(
    workdir: str, load: Load, summarize: Summarize, light_path: str, seconds: float | None = None
) -> list[dict]:
    """The ceiling rows (null model, /predict, 1 and 64 rows) and the multi-row rows (light model, 3 routes)."""
    ensure_null_model()
    rows = []
    plan = {"null": [("predict", 1), ("predict", MULTI_ROWS)], "light": [(r, MULTI_ROWS) for r in bodies("light", 1)]}
    for model, points in plan.items():
        settings = Settings.from_env({}).replace(
            redis_port=free_port(),
            api_port=free_port(),
            grpc_port=0,
            model_path=NULL_PATH if model == "null" else light_path,
            model_name=model,
            log_level="WARNING",
            data_dir=os.path.join(workdir, f"ceiling-{model}"),
        )
        service = Harness(settings)
        redis_server = service.start_redis()
        api = service.start_api(wait_s=None)
        worker = service.start_worker()
        try:
            service.wait_ready(180)
            pids = {"api": api.pid, "worker": worker.pid, "redis": redis_server.process.pid}
            for route, count in points:
                path, body, headers = bodies(model, count)[route]
                row = point(service, pids, route, (path, body, headers, count), load, summarize, workdir, seconds)
                mode = f"ceiling {route} {count}-row" if model == "null" else f"{route} {count}-row"
                rows.append({"model": model, "mode": mode, **row})
        finally:
            service.stop()
    return rows


def describe(row: dict) -> str:
    """`api 0.21 ms (4,800/core), worker …` for one point."""
    cpu, per_core = row["cpu_ms_per_request"], row["requests_per_core"]
    return ", ".join(f"{k} {cpu[k]:.3f} ms ({per_core[k] or 0:,.0f} req/core)" for k in PARTS if k in cpu)


def render(rows: list[dict], raw64: float | None) -> list[str]:
    """Report lines: the ceiling per part, and multi-row rows/s against the raw model at batch 64."""
    lines = []
    for row in rows:
        if row["model"] == "null":
            lines.append(
                f"- {row['mode']}, {row['clients']} clients: {row['requests_per_s']:,.0f} req/s, "
                f"{row['throughput']:,.0f} rows/s; CPU per request and requests per core: {describe(row)}"
            )
        else:
            ratio = f" = {row['throughput'] / raw64:.2f} × raw batch 64" if raw64 else ""
            lines.append(
                f"- light {row['mode']}, {row['clients']} clients: {row['throughput']:,.0f} rows/s{ratio}; "
                + describe(row)
            )
    return lines


def targets(rows: list[dict], raw64: float | None) -> list[dict]:
    """Multi-row requests: ≥ 0.7 × the raw light model at batch 64, per route."""
    out = []
    for row in rows:
        if row["model"] == "light" and row.get("rows_per_request") and raw64:
            ratio = row["throughput"] / raw64
            out.append(
                {
                    "target": f"light, {row['mode']} requests, {row['clients']} clients: ≥ 0.7 × raw at batch 64",
                    "value": ratio,
                    "met": ratio >= 0.7,
                    "detail": f"{row['throughput']:,.0f} vs raw {raw64:,.0f} rows/s ({ratio:.2f}×)",
                }
            )
    return out


def main() -> int:
    from bench.run import LIGHT_PATH, load, summarize

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        rows = measure(workdir, load, summarize, LIGHT_PATH, args.seconds)
    print("\n".join(render(rows, None)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
