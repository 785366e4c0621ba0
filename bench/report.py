"""Turn benchmark rows into the README's Markdown table and the issue's target ratios."""

from __future__ import annotations

import math


def _fmt(value, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


def raw_limit(rows: list[dict], model: str, batch: float) -> float | None:
    """Raw rows/s at `batch`, interpolated (log-linear) between the measured batch sizes."""
    points = sorted(
        (int(r["mode"].split()[1]), r["throughput"]) for r in rows if r["system"] == "raw" and r["model"] == model
    )
    if not points or batch is None:
        return None
    if batch <= points[0][0]:
        return points[0][1]
    for (b0, t0), (b1, t1) in zip(points, points[1:]):
        if b0 <= batch <= b1:
            f = (math.log(batch) - math.log(b0)) / (math.log(b1) - math.log(b0))
            return t0 + f * (t1 - t0)
    return points[-1][1]


def _find(rows, **match) -> dict | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def targets(rows: list[dict]) -> list[dict]:
    """The issue's targets, each with the measured ratio and whether it was met."""
    out = []
    heavy = _find(rows, model="heavy", system="service", mode="wait", clients=64, workers="1 worker")
    if heavy:
        raw64 = _find(rows, model="heavy", system="raw", mode="batch 64")
        limit = raw64["throughput"] if raw64 else None
        ratio = heavy["throughput"] / limit if limit else None
        out.append(
            {
                "target": "heavy, 64 clients, ?wait: ≥ 0.7 × the raw rate at batch 64",
                "value": ratio,
                "met": ratio is not None and ratio >= 0.7,
                "detail": f"{heavy['throughput']:.0f} rows/s vs raw {limit or 0:.0f} rows/s at batch 64 "
                f"(micro-batches formed: {heavy.get('mean_batch') or 0:.1f} rows on average)",
            }
        )
    light = _find(rows, model="light", system="service", mode="wait", clients=64, workers="1 worker")
    classic = _find(rows, model="light", system="classic", clients=64)
    if light and classic:
        ratio = light["throughput"] / classic["throughput"] if classic["throughput"] else None
        out.append(
            {
                "target": "light, 64 clients, ?wait: × the classic recipe (model.predict under a lock), for reference",
                "value": ratio,
                "met": None,
                "detail": f"{light['throughput']:.0f} vs {classic['throughput']:.0f} req/s; p99 {light['p99_ms']:.1f} vs {classic['p99_ms']:.1f} ms",
            }
        )
    for r in rows:
        if r["mode"].startswith("bulk ") and r.get("throughput"):
            out.append(_bulk_rate(rows, r))
            if r.get("interactive_idle_p99_ms"):
                slow = r["p99_ms"] / r["interactive_idle_p99_ms"]
                out.append(
                    {
                        "target": f"{r['mode']}: interactive p99 during the run ≤ 3 × idle",
                        "value": slow,
                        "met": slow <= 3,
                        "detail": f"{r['p99_ms']:.1f} ms vs idle {r['interactive_idle_p99_ms']:.1f} ms",
                    }
                )
        if r["mode"] == "storage bulk npy (s3)":
            local = _find(rows, mode="storage bulk npy (local)")
            ratio = r["throughput"] / local["throughput"] if local and local["throughput"] else None
            out.append(
                {
                    "target": "bulk .npy on S3 (moto, loopback) vs local storage, end to end",
                    "value": ratio,
                    "met": None,
                    "detail": f"{r['throughput']:,.0f} vs {local['throughput'] if local else 0:,.0f} rows/s "
                    f"(upload {r['upload_s']:.1f} s, download {r['download_s']:.1f} s)",
                }
            )
        if r["mode"].startswith("upload memory"):
            out.append(
                {
                    "target": f"API RSS rise during a {r['upload_mb']:,.0f} MB upload ≤ 50 MB",
                    "value": r["rise_mb"],
                    "met": r["rise_mb"] <= 50,
                    "detail": f"{r['api_peak_rss_before_mb']:.0f} → {r['api_peak_rss_during_mb']:.0f} MB peak RSS",
                }
            )
    for model in ("light", "heavy"):
        one = _find(rows, model=model, system="service", mode="wait", clients=1)
        raw1 = _find(rows, model=model, system="raw", mode="batch 1")
        if one and raw1:
            slack = one["p50_ms"] - raw1["p50_ms"]
            out.append(
                {
                    "target": f"{model}, 1 client: p50 ≤ raw batch-1 call + 2 ms",
                    "value": slack,
                    "met": slack <= 2,
                    "detail": f"p50 {one['p50_ms']:.2f} ms vs raw call {raw1['p50_ms']:.2f} ms (+{slack:.2f} ms)",
                }
            )
        two = _find(rows, model=model, system="service", mode="wait", clients=64, workers="2 workers")
        base = _find(rows, model=model, system="service", mode="wait", clients=64, workers="1 worker")
        if two and base:
            out.append(
                {
                    "target": f"{model}: second worker scaling (64 clients, ?wait)",
                    "value": two["throughput"] / base["throughput"],
                    "met": None,
                    "detail": f"{base['throughput']:.0f} → {two['throughput']:.0f} rows/s",
                }
            )
        trips = [
            r.get("worker_round_trips_per_batch")
            for r in rows
            if r["model"] == model and r["system"] == "service" and r.get("worker_round_trips_per_batch")
        ]
        cmds = [
            r.get("redis_cmds_per_job")
            for r in rows
            if r["model"] == model and r["system"] == "service" and r["mode"] == "wait" and r.get("redis_cmds_per_job")
        ]
        if trips:
            out.append(
                {
                    "target": f"{model}: worker Redis round trips per batch (all service rows)",
                    "value": max(trips),
                    "met": None,
                    "detail": f"{min(trips):.2f} to {max(trips):.2f}",
                }
            )
        if cmds:
            out.append(
                {
                    "target": f"{model}: Redis commands per job (?wait rows)",
                    "value": max(cmds),
                    "met": None,
                    "detail": f"{min(cmds):.1f} to {max(cmds):.1f}",
                }
            )
    return out


def _bulk_rate(rows: list[dict], r: dict) -> dict:
    """The bulk rate target for a batch run alone; with interactive traffic alongside the rate is recorded only
    (interactive work is served first, so what the batch gets depends on how much of it there is)."""
    limit = raw_limit(rows, "light", 1024)
    ratio = r["throughput"] / limit if limit else None
    share = 0.3 if "ndjson" in r["mode"] else 0.5
    alone = not r.get("clients")
    return {
        "target": f"{r['mode']}: ≥ {share} × raw limit at BATCH_CHUNK_ROWS, end to end"
        if alone
        else f"{r['mode']}: rows/s × raw limit at BATCH_CHUNK_ROWS, for reference",
        "value": ratio,
        "met": (ratio is not None and ratio >= share) if alone else None,
        "detail": f"{r['throughput']:,.0f} rows/s vs raw {limit or 0:,.0f} rows/s at batch 1024 "
        f"({r['rows']:,} rows in {r['elapsed_s']:.1f} s)",
    }


def render_table(results: dict) -> str:
    """The Markdown table and target list printed by `make bench` and pasted into the README."""
    m = results["machine"]
    lines = [
        f"Run {results['when']} on {m['cpu']} ({m['cpu_count']} CPUs), Python {m['python']}, "
        f"TensorFlow {m['packages']['tensorflow']}; {results['seconds_per_point']:g} s per point.",
        "",
        "| model | system | mode | clients | rows/s | p50 ms | p95 ms | p99 ms | mean batch | model calls "
        "| Redis cmds/job | CPU s/1k rows (api/worker/redis) | peak RSS MB (api/worker/redis) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        cpu = r.get("cpu_s_per_1k_rows", {})
        rss = r.get("peak_rss_mb", {})
        mode = r["mode"] + (f" ({r['workers']})" if r.get("workers") == "2 workers" else "")
        lines.append(
            f"| {r['model']} | {r['system']} | {mode} | {_fmt(r.get('clients'))} | {_fmt(r['throughput'])} "
            f"| {_fmt(r.get('p50_ms'), 2)} | {_fmt(r.get('p95_ms'), 1)} | {_fmt(r.get('p99_ms'), 1)} "
            f"| {_fmt(r.get('mean_batch'), 1)} | {_fmt(r.get('model_calls'))} | {_fmt(r.get('redis_cmds_per_job'), 1)} "
            f"| {'/'.join(_fmt(cpu.get(k), 2) for k in ('api', 'worker', 'redis')) if cpu else '–'} "
            f"| {'/'.join(_fmt(rss.get(k)) for k in ('api', 'worker', 'redis')) if rss else '–'} |"
        )
    lines += ["", "Targets:", ""]
    for t in results.get("targets", []):
        verdict = {True: "met", False: "MISSED", None: "measured"}[t["met"]]
        lines.append(f"- {t['target']}: **{verdict}** — {t['detail']}")
    return "\n".join(lines)
