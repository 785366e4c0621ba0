"""Bulk batches with STORAGE_URL=s3://... against a real S3 HTTP server on loopback (moto's standalone server):
an API and two workers with separate, empty DATA_DIRs share nothing but Redis and the bucket; uploads stream
in bounded memory; expiry deletes the objects; and a store outage is a 503 for uploads and a retry (then
`storage_failed`, with every row listed) for chunks, never a batch that completes silently short."""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import orjson
import pytest

from shared import keys
from tests.e2e.test_batches import ndjson_bytes, npy_bytes
from tests.e2e.test_large_batch import rss_kb
from tests.support import wait_until

pytestmark = pytest.mark.e2e

PREFIX = "inference/batches"


@pytest.fixture(scope="module")
def bucket(s3_server):
    """A bucket for this module's service; the variables that point boto3 at the server, for its processes."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in s3_server.env.items():
            patch.setenv(name, value)
        yield s3_server.new_bucket()


@pytest.fixture(scope="module")
def s3_service(bucket, make_module_service, tmp_path_factory):
    """API + two workers, each with its own empty DATA_DIR, and STORAGE_URL=s3://<bucket>/<PREFIX>."""
    dirs = [tmp_path_factory.mktemp(name) for name in ("api-data", "worker-0-data", "worker-1-data")]
    service = make_module_service(workers=0, storage_url=f"s3://{bucket}/{PREFIX}", data_dir=str(dirs[0]))
    for data_dir in dirs[1:]:
        service.start_worker(DATA_DIR=str(data_dir))
    service.data_dirs = dirs
    return service


def objects(s3_server, bucket: str, batch_id: str) -> set[str]:
    pages = s3_server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{PREFIX}/{batch_id}/")
    return {item["Key"][len(PREFIX) + len(batch_id) + 2 :] for page in pages for item in page.get("Contents", [])}


def with_bad_rows(x: np.ndarray) -> bytes:
    """NDJSON of `x` with two invalid lines inserted (rows 3 and 2500 of the file), for on_error=skip."""
    lines = ndjson_bytes(x).splitlines(keepends=True)
    lines.insert(3, b'[1, 2, "three"]\n')
    lines.insert(2500, b"[]\n")
    return b"".join(lines)


def test_an_api_and_two_workers_with_separate_empty_data_dirs_give_the_same_results_as_local_storage(
    s3_service, service, s3_server, bucket, digits
):
    body = with_bad_rows(np.tile(digits[0], (3, 1))[:4998])  # 5,000 file rows, 5 chunks
    ids = {}
    for name, where in (("s3", s3_service), ("local", service)):
        created = where.upload(body, "application/x-ndjson", on_error="skip")
        assert created.status_code == 202, created.text
        ids[name] = created.json()["id"]
    docs = {name: where.wait_batch(ids[name], 120) for name, where in (("s3", s3_service), ("local", service))}
    for doc in docs.values():
        assert (doc["status"], doc["total_rows"], doc["done_rows"], doc["failed_rows"]) == ("completed", 5000, 4998, 2)
    for path, accept in (("results", "application/x-ndjson"), ("results", "application/x-npy"), ("errors", "*/*")):
        s3, local = (
            where.http.get(f"/batches/{ids[name]}/{path}", headers={"Accept": accept})
            for name, where in (("s3", s3_service), ("local", service))
        )
        assert s3.status_code == local.status_code == 200 and s3.content == local.content, path
    assert objects(s3_server, bucket, ids["s3"]) == {
        ".batch",
        "input-0.npy",
        "skipped.npy",
        "errors-upload.ndjson",
        *(f"output-{c}.npz" for c in range(5)),
    }
    leftovers = [os.path.join(root, f) for d in s3_service.data_dirs for root, _, files in os.walk(d) for f in files]
    assert leftovers == [], "a process wrote bulk files to its DATA_DIR"


def test_an_expired_batch_has_its_objects_deleted(s3_service, s3_server, bucket, digits):
    batch_id = s3_service.upload(npy_bytes(digits[0][:300]), "application/x-npy").json()["id"]
    assert s3_service.wait_batch(batch_id)["status"] == "completed"
    assert "output-0.npz" in objects(s3_server, bucket, batch_id)
    s3_service.redis.zadd(keys.batch_retirement(), {batch_id: 0})  # due now, rather than after BATCH_TTL
    assert s3_service.wait_batch(batch_id, statuses=("expired",))["status"] == "expired"
    wait_until(lambda: objects(s3_server, bucket, batch_id) == set(), 10)


def test_a_large_upload_streams_to_the_bucket_in_bounded_memory(s3_service, digits, tmp_path):
    rows = 500_000  # × 64 float32 = 122 MiB: 15 multipart parts
    path = tmp_path / "rows.npy"
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, 64))
    for start in range(0, rows, len(digits[0])):
        array[start : start + len(digits[0])] = digits[0][: rows - start]
    array.flush()
    del array
    (pid,) = s3_service.api_worker_pids()
    assert s3_service.predict([digits[0][0].tolist()]).status_code == 200  # warm before the baseline
    baseline = peak = rss_kb(pid)
    uploaded = threading.Event()

    def sample():
        nonlocal peak
        while not uploaded.wait(0.02):
            peak = max(peak, rss_kb(pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with open(path, "rb") as file:
            created = s3_service.http.post("/batches", content=file, headers={"Content-Type": "application/x-npy"})
    finally:
        uploaded.set()
        sampler.join()
    assert created.status_code == 202, created.text
    s3_service.http.delete(f"/batches/{created.json()['id']}")
    grew_mb = (peak - baseline) / 1024
    assert grew_mb <= 50, f"the API process grew by {grew_mb:.0f} MB while a 122 MiB file streamed to S3"


def test_a_store_outage_fails_uploads_with_503_and_chunks_with_storage_failed_listing_every_row(
    make_service, own_s3_server, digits
):
    bucket = own_s3_server.new_bucket()
    service = make_service(
        storage_url=f"s3://{bucket}/{PREFIX}", max_attempts=2, batch_chunk_rows=100, storage_retry_s=0.5
    )
    (worker,) = service.workers
    service.signal_worker(worker, signal.SIGSTOP)  # holds the chunks back until the store is down
    batch_id = service.upload(npy_bytes(digits[0][:250]), "application/x-npy").json()["id"]
    own_s3_server.stop()

    refused = service.upload(npy_bytes(digits[0][:10]), "application/x-npy")
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
    assert refused.json()["error"]["code"] == "storage_unavailable"
    assert f"s3://{bucket}/{PREFIX}/" in refused.json()["error"]["message"]
    assert [key for key in service.redis.scan_iter(keys.batch("*")) if batch_id.encode() not in key] == []

    service.signal_worker(worker, signal.SIGCONT)
    doc = service.wait_batch(batch_id, 90)
    assert (doc["status"], doc["done_rows"], doc["failed_rows"]) == ("failed", 0, 250)
    assert (
        service.harness.log_text(tail_chars=10**7).count("failed on storage") == 3
    )  # each chunk's first attempt; the second fails it
    unreadable = service.http.get(f"/batches/{batch_id}/errors")
    assert unreadable.status_code == 503 and unreadable.json()["error"]["code"] == "storage_unavailable"

    own_s3_server.start()
    own_s3_server.client().create_bucket(Bucket=bucket)  # moto comes back empty: the error files were never written
    lines = [orjson.loads(line) for line in service.http.get(f"/batches/{batch_id}/errors").content.splitlines()]
    assert [line["row"] for line in lines] == list(range(250))
    assert all(
        line["error"].startswith("storage_failed: the chunk's rows could not be read: the object store")
        for line in lines
    )


def test_a_chunk_that_cannot_reach_the_store_is_retried_and_finishes_once_the_store_is_back(
    make_service, own_s3_server, digits, digits_model
):
    bucket = own_s3_server.new_bucket()
    # Three retries, 3 + 6 + 12 s apart: far longer than the store takes to come back.
    service = make_service(storage_url=f"s3://{bucket}/{PREFIX}", max_attempts=4, storage_retry_s=3)
    (worker,) = service.workers
    service.signal_worker(worker, signal.SIGSTOP)
    x = digits[0][:1500]
    batch_id = service.upload(npy_bytes(x), "application/x-npy").json()["id"]
    saved = own_s3_server.snapshot(bucket)
    own_s3_server.stop()
    service.signal_worker(worker, signal.SIGCONT)
    wait_until(lambda: "failed on storage" in service.logs(), 60)
    own_s3_server.start()
    own_s3_server.restore(bucket, saved)

    doc = service.wait_batch(batch_id, 90)
    assert (doc["status"], doc["done_rows"], doc["failed_rows"]) == ("completed", 1500, 0)
    lines = [orjson.loads(line) for line in service.http.get(f"/batches/{batch_id}/results").content.splitlines()]
    assert [line["row"] for line in lines] == list(range(1500))
    expected = digits_model.predict({"pixels": x})["probabilities"]
    np.testing.assert_allclose([line["prediction"] for line in lines], expected, rtol=1e-5, atol=1e-6)
