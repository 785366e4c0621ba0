"""Many models on one stack: two models behind one worker against one worker each, and the p99 of a model's
requests while a new version of it is loaded against the p99 without a reload.

Both models are the light digits model, served from a TF Serving model config file (as `a` and `b`), so the
two set-ups differ only in how workers are shared. Load: 32 closed-loop `?wait` clients per model, one row
each. Reload: 16 clients on model `a`; one run as it is, one run in which version 2's directory appears a
second in (the worker loads and warms it beside version 1, then serves it).

    python -m bench.models [--seconds 6]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from scripts.harness import Harness, free_port
from scripts.model_versions import add_digits, write_config
from shared.config import Settings

MODELS = ("a", "b")
CLIENTS_PER_MODEL = 32
RELOAD_CLIENTS = 16

Load = Callable[..., dict]
Summarize = Callable[[dict], dict]


def _stack(root: Path, workdir: str, name: str) -> Harness:
    settings = Settings.from_env({}).replace(
        redis_port=free_port(),
        api_port=free_port(),
        grpc_port=0,
        model_path="",
        model_config_file=str(root / "models.config"),
        log_level="WARNING",
        data_dir=os.path.join(workdir, f"models-{name}"),
    )
    return Harness(settings)


def _models(root: Path, names: tuple[str, ...]) -> None:
    for name in names:
        add_digits(root / name, 1)
    write_config(root / "models.config", [(name, root / name, "") for name in names])


def _body(workdir: str) -> str:
    from sklearn.datasets import load_digits

    path = os.path.join(workdir, "models-body.json")
    with open(path, "wb") as f:
        f.write(orjson.dumps({"instances": load_digits().data[:1].astype("float32").tolist()}))
    return path


def _parallel_load(service: Harness, body: str, load: Load, seconds: float | None) -> list[dict]:
    """One closed-loop load per model at once; their raw results in MODELS order."""
    results: list[dict] = [{} for _ in MODELS]
    timing = {"seconds": seconds} if seconds else {}

    def run(i: int) -> None:
        path = f"/predict?wait=30&model={MODELS[i]}"
        results[i] = load(service.base_url, "wait", CLIENTS_PER_MODEL, body, path=path, **timing)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(MODELS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def sharing(workdir: str, load: Load, summarize: Summarize, seconds: float | None) -> list[dict]:
    """Two models behind one worker, then one worker each (WORKER_MODELS): rows/s and p99 per model."""
    rows = []
    body = _body(workdir)
    for setup in ("one worker, two models", "one worker per model"):
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            root = Path(tmp)
            _models(root, MODELS)
            service = _stack(root, workdir, setup.replace(" ", "-").replace(",", ""))
            service.start_redis()
            service.start_api(wait_s=None)
            if setup.startswith("one worker,"):
                service.start_worker()
            else:
                for name in MODELS:
                    service.start_worker({"WORKER_MODELS": name})
            try:
                service.wait_ready(180)
                _parallel_load(service, body, load, 1.0)  # warm
                results = [summarize(r) for r in _parallel_load(service, body, load, seconds)]
            finally:
                service.stop()
        total = sum(r["throughput"] for r in results)
        p99 = max(r["p99_ms"] for r in results)
        rows.append(
            {
                "model": "light",
                "system": "service",
                "mode": f"models: {setup}",
                "clients": 64,
                "throughput": total,
                "p99_ms": p99,
                "per_model": results,
            }
        )
        print(f"models {setup}: {total:,.0f} rows/s, worst p99 {p99:.1f} ms", file=sys.stderr, flush=True)
    return rows


def reload(workdir: str, load: Load, summarize: Summarize, seconds: float | None) -> list[dict]:
    """p99 of model `a`'s requests without a reload, and while version 2 appears and is loaded."""
    rows = []
    body = _body(workdir)
    timing = {"seconds": seconds} if seconds else {}
    for during_reload in (False, True):
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            root = Path(tmp)
            _models(root, MODELS[:1])
            service = _stack(root, workdir, f"reload-{during_reload}")
            service.start_redis()
            service.start_api(wait_s=None)
            service.start_worker()
            try:
                service.wait_ready(180)
                load(service.base_url, "wait", RELOAD_CLIENTS, body, seconds=1.0)  # warm
                timer = threading.Timer(1.0, add_digits, (root / MODELS[0], 2)) if during_reload else None
                if timer:
                    timer.start()
                started = time.monotonic()
                result = summarize(load(service.base_url, "wait", RELOAD_CLIENTS, body, **timing))
                if timer:
                    timer.join()
                    result["reloaded_in_run"] = _available(service, MODELS[0], "2")  # else the run was too short
            finally:
                service.stop()
        mode = "reload: version 2 loaded during the run" if during_reload else "reload: none (control)"
        rows.append({"model": "light", "system": "service", "mode": mode, "clients": RELOAD_CLIENTS, **result})
        seen = f", version 2 available by the end: {result['reloaded_in_run']}" if during_reload else ""
        print(f"{mode}: p99 {result['p99_ms']:.1f} ms over {time.monotonic() - started:.1f} s{seen}", file=sys.stderr)
    return rows


def _available(service: Harness, model: str, version: str) -> bool:
    """Whether `model`'s `version` is AVAILABLE now, as GET /v1/models/<name> reports it."""
    import httpx

    listed = httpx.get(f"{service.base_url}/v1/models/{model}", timeout=10).json().get("model_version_status", [])
    return any(v["version"] == version and v["state"] == "AVAILABLE" for v in listed)


def measure(workdir: str, load: Load, summarize: Summarize, seconds: float | None = None) -> list[dict]:
    """Both parts, as rows for the bench report."""
    return sharing(workdir, load, summarize, seconds) + reload(workdir, load, summarize, seconds)


def render(rows: list[dict]) -> list[str]:
    """Report lines for the models rows."""
    return [
        f"- {row['mode']}, {row['clients']} clients: {row['throughput']:,.0f} rows/s, p99 {row['p99_ms']:.1f} ms"
        for row in rows
        if row["mode"].startswith(("models:", "reload:"))
    ]


def main() -> int:
    from bench.run import load, summarize

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        rows = measure(workdir, load, summarize, args.seconds)
    print("\n".join(render(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
