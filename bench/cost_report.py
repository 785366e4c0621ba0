"""The costs section of `make bench`: issue 11's targets on Redis work per job, the careful recipe and the
model's busy fraction, plus the CPU split, the API server comparison and the Redis-only ceiling.

Reads the rows bench/run.py collects (service rows carry `redis_cost`, `cpu_cores` and `model_busy` from
bench/phase_meter.py; careful rows come from bench/careful.py; API server rows from bench/api_servers.py)
and `results["redis_only"]` (bench/redis_only.py).
"""

from __future__ import annotations

from bench import api_servers, ceiling, models, redis_only

CPU_PARTS = ("api", "worker", "worker2", "redis", "loadgen", "other", "idle")


def _find(rows: list[dict], **match) -> dict | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def _service(rows: list[dict], model: str, clients: int) -> dict | None:
    return _find(rows, model=model, system="service", mode="wait", clients=clients, workers="1 worker")


def _target(text: str, value: float | None, met: bool | None, detail: str) -> dict:
    return {"target": text, "value": value, "met": met, "detail": detail}


def targets(rows: list[dict]) -> list[dict]:
    """Issue 11's targets that these measurements decide (same shape as bench.report.targets)."""
    out = []
    light, careful = _service(rows, "light", 64), _find(rows, model="light", system="careful", clients=64)
    if light and careful and careful["throughput"]:
        ratio = light["throughput"] / careful["throughput"]
        out.append(
            _target(
                "light, 64 clients, ?wait: ≥ 1.8 × the careful recipe, lower p99",
                ratio,
                ratio >= 1.8 and light["p99_ms"] < careful["p99_ms"],
                f"{light['throughput']:.0f} vs {careful['throughput']:.0f} req/s; "
                f"p99 {light['p99_ms']:.1f} vs {careful['p99_ms']:.1f} ms",
            )
        )
    for clients, most in ((64, 8), (1, 15)):
        cost = (_service(rows, "light", clients) or {}).get("redis_cost")
        if cost:
            out.append(
                _target(
                    f"light, {clients} client(s): ≤ {most} Redis commands per job",
                    cost["commands_per_job"],
                    cost["commands_per_job"] <= most,
                    _describe(cost),
                )
            )
    cost = (light or {}).get("redis_cost")
    if cost:
        out.append(
            _target(
                "light, 64 clients: ≤ 0.03 ms Redis CPU per job (≥ 30,000 jobs/s per Redis core)",
                cost["cpu_ms_per_job"],
                cost["cpu_ms_per_job"] <= 0.03,
                _describe(cost),
            )
        )
        out.append(
            _target(
                "light, 64 clients: Redis memory per finished one-row job ≤ 2 KB",
                cost["memory_bytes_per_job"],
                cost["memory_bytes_per_job"] <= 2048,
                _describe(cost),
            )
        )
    heavy = _service(rows, "heavy", 64)
    if heavy and heavy.get("model_busy") is not None:
        out.append(
            _target(
                "heavy, 64 clients, ?wait: model busy fraction ≥ 0.85",
                heavy["model_busy"],
                heavy["model_busy"] >= 0.85,
                f"{heavy['model_busy']:.2f} of the wall time in the model call",
            )
        )
    elif heavy:
        out.append(
            _target(
                "heavy, 64 clients, ?wait: model busy fraction ≥ 0.85",
                None,
                None,
                "not measured: the worker does not publish `model_s` in keys.stats()",
            )
        )
    raw64 = _find(rows, model="heavy", system="raw", mode="batch 64")
    if heavy and raw64:
        ratio = heavy["throughput"] / raw64["throughput"]
        out.append(
            _target(
                "heavy, 64 clients, ?wait: ≥ 0.7 × the raw rate at batch 64",
                ratio,
                ratio >= 0.7,
                f"{heavy['throughput']:.0f} vs raw {raw64['throughput']:.0f} rows/s at batch 64",
            )
        )
    return out


def _describe(cost: dict) -> str:
    top = ", ".join(f"{k.upper()} {v:.1f}" for k, v in list(cost["top_commands_per_job"].items())[:8])
    return (
        f"{cost['commands_per_job']:.1f} commands, {cost['cpu_ms_per_job']:.3f} ms CPU, "
        f"{cost['memory_bytes_per_job'] / 1024:.2f} KB per job; top: {top}"
    )


def cpu_split(row: dict) -> str:
    """Cores used per part over the phase, e.g. `api 0.60, worker 0.91, …`."""
    cores = row.get("cpu_cores") or {}
    return ", ".join(f"{k} {cores[k]:.2f}" for k in CPU_PARTS if k in cores)


def render(results: dict) -> str:
    """The Markdown lines printed after bench.report.render_table's."""
    rows = results["rows"]
    lines = ["", "Redis work per job (INFO before/after each load point):", ""]
    for model in ("light", "heavy"):
        for clients in (1, 64):
            row = _service(rows, model, clients)
            if row and row.get("redis_cost"):
                lines.append(f"- {model}, {clients} client(s), ?wait: {_describe(row['redis_cost'])}")
    for model in ("light", "heavy"):
        row = _service(rows, model, 64)
        if row and row.get("cpu_cores"):
            busy = row.get("model_busy")
            lines.append(
                f"- CPU split, {model}, 64 clients, ?wait (cores): {cpu_split(row)}; model busy "
                + (f"{busy:.2f}" if busy is not None else "not published (no `model_s` in keys.stats())")
            )
    servers = [r for r in rows if r.get("api_server")]
    if servers:
        lines.append(f"- {api_servers.verdict(servers)}")
    walls = [r for r in rows if r.get("rows_per_request")]
    if walls:
        raw64 = _find(rows, model="light", system="raw", mode="batch 64")
        lines += ["", "Queue-path ceiling (zero-cost model) and 64-row requests (bench/ceiling.py):", ""]
        lines += ceiling.render(walls, raw64["throughput"] if raw64 else None)
    many = models.render(rows)
    if many:
        lines += ["", "Many models on one stack, and a version loaded under load (bench/models.py):", ""] + many
    if results.get("redis_only"):
        lines += [
            "",
            "Redis-only ceiling (no HTTP, no model; bench/redis_only.py):",
            "",
            redis_only.render(results["redis_only"]),
        ]
    return "\n".join(lines)
