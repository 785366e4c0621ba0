"""The bulk path on an object store against the local directory: the same `.npy` batch, upload to downloaded
results, on a stack with STORAGE_URL=s3://... (moto's standalone S3 server on loopback) and on one with
DATA_DIR; and the API's RSS during a large upload to the bucket.

moto keeps objects in memory and answers from the same machine, so this measures our side of the S3 path
(multipart parts, ranged GETs, one object per chunk), not a real store's latency or bandwidth.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import boto3
import httpx

from bench import bulk
from scripts import harness as stack
from scripts.embedded_redis import EmbeddedRedis
from scripts.harness import Harness, free_port
from shared.config import Settings

BUCKET = "bench-batches"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


@contextlib.contextmanager
def moto_server(workdir: str) -> Iterator[str]:
    """moto's S3 server as a subprocess on a free loopback port, with BUCKET created; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(os.path.join(workdir, "moto.log"), "ab") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    try:
        stack.wait_http(f"{url}/moto-api/", 60, server)
        boto3.client(
            "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="bench", aws_secret_access_key="bench"
        ).create_bucket(Bucket=BUCKET)
        yield url
    finally:
        stack.stop(server)


@contextlib.contextmanager
def child_variables(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the processes started inside the block (boto3's own, not our settings)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_one(label: str, settings: Settings, npy: str, big: str | None) -> list[dict]:
    """Start API + one worker with `settings`, run the batch, then (with `big`) the upload-memory point."""
    service = Harness(settings)
    api = service.start_api(wait_s=None)
    worker = service.start_worker()
    url = f"http://127.0.0.1:{settings.api_port}"
    try:
        stack.wait_http(f"{url}/readyz", 180, worker.process)
        with httpx.Client(base_url=url, timeout=600) as client:
            started = time.perf_counter()
            batch = bulk.upload(client, npy, "application/x-npy")
            uploaded = time.perf_counter()
            while (status := client.get(f"/batches/{batch['id']}").json())["status"] not in ("completed", "failed"):
                time.sleep(0.1)
            done = time.perf_counter()
            size = len(client.get(f"/batches/{batch['id']}/results", headers={"Accept": "application/x-npy"}).content)
            finished = time.perf_counter()
            elapsed = finished - started
        rows = [
            {
                "model": "light",
                "system": "service",
                "mode": f"storage bulk npy ({label})",
                "clients": None,
                "throughput": status["done_rows"] / elapsed,
                "rows": status["done_rows"],
                "status": status["status"],
                "upload_s": uploaded - started,
                "run_s": done - uploaded,
                "download_s": finished - done,
                "download_bytes": size,
                "elapsed_s": elapsed,
            }
        ]
        print(
            f"bulk npy on {label}: {status['done_rows']} rows in {elapsed:.1f} s (upload {uploaded - started:.1f} s, "
            f"run {done - uploaded:.1f} s, download {finished - done:.1f} s)",
            file=sys.stderr,
            flush=True,
        )
        if big:
            memory = bulk.upload_memory(url, big, api.pid)
            rows.append(
                {
                    "model": "light",
                    "system": "service",
                    "mode": f"upload memory ({label})",
                    "clients": None,
                    "throughput": None,
                    **memory,
                }
            )
        return rows
    finally:
        service.stop()


def measure(workdir: str, rows: int, big_bytes: int) -> list[dict]:
    """The same batch on local storage and on S3 (moto); `big_bytes` > 0 adds the upload-memory point on S3."""
    npy = bulk.write_inputs(workdir, rows)["npy"]
    big = None
    if big_bytes:
        big = os.path.join(workdir, "big-s3.npy")
        bulk.write_big_npy(big, big_bytes)
    results = []
    with moto_server(workdir) as url, child_variables({"AWS_ENDPOINT_URL": url, **CREDENTIALS}):
        for label, storage_url in (("local", ""), ("s3", f"s3://{BUCKET}/bench")):
            redis_server = EmbeddedRedis(free_port(), os.path.join(workdir, f"redis-storage-{label}")).start()
            try:
                settings = Settings.from_env({}).replace(
                    redis_url=redis_server.url,
                    api_port=free_port(),
                    log_level="WARNING",
                    storage_url=storage_url,
                    data_dir=os.path.join(workdir, f"data-{label}"),
                )
                results += run_one(label, settings, npy, big if label == "s3" else None)
            finally:
                redis_server.stop()
    if big:
        os.remove(big)
    return results


if __name__ == "__main__":  # a quick look: python -m bench.bulk_storage
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        for row in measure(directory, 20_000, 64 * 1024 * 1024):
            print(row)
