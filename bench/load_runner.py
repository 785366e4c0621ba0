"""The one way the benchmarks run the load generator (bench/loadgen.py) in its own process: its command
line, run to the end or in the background, and the latency percentiles of its result."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import orjson

from scripts import harness
from shared.config import Settings


def command(
    url: str,
    mode: str,
    clients: int,
    seconds: float,
    body_file: str,
    stop_file: str = "",
    path: str = "",
    headers: tuple[str, ...] = (),
) -> list[str]:
    """The loadgen command line (`stop_file`: it stops early once that file exists; `path`: the route `wait`
    posts to, default /predict?wait=30; `headers`: extra request headers, "Name: value" each)."""
    args = [sys.executable, "-m", "bench.loadgen", "--url", url, "--mode", mode, "--clients", str(clients)]
    args += ["--seconds", str(seconds), "--body", body_file]
    args += [arg for header in headers for arg in ("--header", header)]
    return args + (["--stop-file", stop_file] if stop_file else []) + (["--path", path] if path else [])


def run(
    url: str, mode: str, clients: int, body_file: str, seconds: float, path: str = "", headers: tuple[str, ...] = ()
) -> dict:
    """Run the load to its end; loadgen's JSON (requests, jobs, seconds, latencies_ms, errors)."""
    out = subprocess.run(
        command(url, mode, clients, seconds, body_file, path=path, headers=headers),
        check=True,
        capture_output=True,
        env=harness.child_env(Settings()),
    )
    return orjson.loads(out.stdout)


def start(url: str, mode: str, clients: int, body_file: str, seconds: float, stop_file: str) -> subprocess.Popen:
    """Start the load in the background; it ends at `seconds` or once `stop_file` exists (read its stdout)."""
    return subprocess.Popen(
        command(url, mode, clients, seconds, body_file, stop_file),
        stdout=subprocess.PIPE,
        env=harness.child_env(Settings()),
    )


def percentiles(result: dict) -> dict[str, float]:
    """p50, p95 and p99 of a result's latencies (NaN for a run with none)."""
    latencies = np.array(result["latencies_ms"] or [np.nan])
    return {f"p{q}_ms": float(np.percentile(latencies, q)) for q in (50, 95, 99)}
