"""The bulk rows of `make bench`: 200,000 digits rows uploaded as .npy and as NDJSON, through to downloaded
results, alone and then with interactive ?wait traffic running alongside; and the API's RSS during a large upload."""

from __future__ import annotations

import os
import sys
import time

import httpx
import numpy as np
import orjson

from bench import load_runner, procstats

BULK_ROWS = 200_000
INTERACTIVE_CLIENTS = 4
# How often the bench polls a batch's status: at 100 ms it added ~50 ms on average to runs of ~1-5 s.
STATUS_POLL_S = 0.02


def write_inputs(workdir: str, rows: int) -> dict[str, str]:
    """The digits data set repeated to `rows` rows, as .npy and as NDJSON files."""
    from sklearn.datasets import load_digits

    data = load_digits().data.astype(np.float32)
    x = np.resize(data, (rows, data.shape[1]))
    npy = os.path.join(workdir, "bulk.npy")
    np.save(npy, x)
    ndjson = os.path.join(workdir, "bulk.ndjson")
    with open(ndjson, "wb") as f:
        for start in range(0, rows, 10_000):
            f.write(b"".join(orjson.dumps(row) + b"\n" for row in x[start : start + 10_000].tolist()))
    return {"npy": npy, "ndjson": ndjson}


def write_big_npy(path: str, size_bytes: int) -> None:
    """A .npy file of about `size_bytes` of float32 digits-shaped rows, written in pieces."""
    rows = size_bytes // (64 * 4)
    header = np.lib.format.header_data_from_array_1_0(np.zeros((0, 64), np.float32))
    header["shape"] = (rows, 64)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        block = np.ones((65_536, 64), np.float32).tobytes()
        left = rows * 64 * 4
        while left > 0:
            f.write(block[: min(left, len(block))])
            left -= len(block)


def upload(client: httpx.Client, path: str, content_type: str) -> dict:
    with open(path, "rb") as f:
        response = client.post("/batches", content=f, headers={"Content-Type": content_type})
    response.raise_for_status()
    return response.json()


def run_bulk(url: str, files: dict[str, str], interactive_body: str) -> list[dict]:
    """Two rows per format: the batch alone (rows/s end to end: the bulk path's own rate), then the same batch
    with interactive ?wait traffic alongside (its p99 against idle; interactive work is served ahead of bulk,
    so the batch's rows/s there depends on how much interactive traffic takes, and is recorded, not a target)."""
    rows = []
    with httpx.Client(base_url=url, timeout=600) as client:
        for fmt, content_type in (("npy", "application/x-npy"), ("ndjson", "application/x-ndjson")):
            if fmt not in files:
                continue
            alone = _one_batch(client, files[fmt], fmt, content_type)
            rows.append({**alone, "mode": f"bulk {fmt}", "clients": 0})
            idle = _interactive(url, interactive_body, 3.0)
            load = InteractiveLoad(url, interactive_body, os.path.dirname(files[fmt]))
            alongside = _one_batch(client, files[fmt], fmt, content_type)
            interactive = load.stop()
            rows.append(
                {
                    **alongside,
                    "mode": f"bulk {fmt} + interactive",
                    "clients": INTERACTIVE_CLIENTS,
                    "p50_ms": interactive.get("p50_ms"),
                    "p95_ms": interactive.get("p95_ms"),
                    "p99_ms": interactive.get("p99_ms"),
                    "interactive_idle_p99_ms": idle["p99_ms"],
                }
            )
            print(
                f"bulk {fmt}: {alone['rows']} rows in {alone['elapsed_s']:.1f} s ({alone['throughput']:,.0f} rows/s) "
                f"alone, {alongside['throughput']:,.0f} rows/s with interactive traffic alongside, whose p99 was "
                f"{interactive.get('p99_ms', 0):.1f} ms vs idle {idle['p99_ms']:.1f} ms",
                file=sys.stderr,
                flush=True,
            )
    return rows


def _one_batch(client: httpx.Client, path: str, fmt: str, content_type: str) -> dict:
    """Upload `path`, wait for the batch to end, download its results: the bench row's common fields."""
    started = time.perf_counter()
    batch = upload(client, path, content_type)
    uploaded = time.perf_counter()
    while True:
        status = client.get(f"/batches/{batch['id']}").json()
        if status["status"] in ("completed", "failed", "cancelled", "expired"):
            break
        time.sleep(STATUS_POLL_S)
    done_rows = download(client, batch["id"], fmt)
    elapsed = time.perf_counter() - started
    return {
        "model": "light",
        "system": "service",
        "throughput": done_rows / elapsed,
        "rows": done_rows,
        "status": status["status"],
        "upload_s": uploaded - started,
        "elapsed_s": elapsed,
    }


def download(client: httpx.Client, batch_id: str, fmt: str) -> int:
    """The batch's results in the format it was uploaded in (a .npy upload gets a .npy back); returns the rows."""
    if fmt == "npy":
        with client.stream("GET", f"/batches/{batch_id}/results", headers={"Accept": "application/x-npy"}) as response:
            response.raise_for_status()
            for _ in response.iter_bytes():
                pass
            return int(response.headers["X-Rows"])
    done_rows = 0
    with client.stream("GET", f"/batches/{batch_id}/results") as response:
        for line in response.iter_lines():
            done_rows += bool(line)
    return done_rows


def upload_memory(url: str, path: str, api_pid: int) -> dict:
    """Peak API RSS before and during a large .npy upload (the batch is cancelled right after)."""
    procstats.reset_peak_rss(api_pid)
    before = procstats.peak_rss_mb(api_pid)
    with httpx.Client(base_url=url, timeout=600) as client:
        started = time.perf_counter()
        batch = upload(client, path, "application/x-npy")
        elapsed = time.perf_counter() - started
        client.delete(f"/batches/{batch['id']}")
    after = procstats.peak_rss_mb(api_pid)
    size_mb = os.path.getsize(path) / 1e6
    print(f"upload of {size_mb:,.0f} MB: API peak RSS {before:.0f} → {after:.0f} MB", file=sys.stderr, flush=True)
    return {
        "upload_mb": size_mb,
        "upload_s": elapsed,
        "api_peak_rss_before_mb": before,
        "api_peak_rss_during_mb": after,
        "rise_mb": after - before,
    }


def _interactive(url: str, body_file: str, seconds: float) -> dict:
    return load_runner.percentiles(load_runner.run(url, "wait", INTERACTIVE_CLIENTS, body_file, seconds))


class InteractiveLoad:
    """Interactive ?wait traffic in a background loadgen process until `stop()`."""

    def __init__(self, url: str, body_file: str, workdir: str) -> None:
        self.stop_file = os.path.join(workdir, "stop-interactive")
        if os.path.exists(self.stop_file):
            os.remove(self.stop_file)
        self.process = load_runner.start(url, "wait", INTERACTIVE_CLIENTS, body_file, 600, self.stop_file)

    def stop(self) -> dict:
        open(self.stop_file, "w").close()
        out, _ = self.process.communicate(timeout=120)
        return load_runner.percentiles(orjson.loads(out))
