"""One large batch (200 MiB, 819,200 rows: seconds of model work) on the shared service: the upload streams
in bounded memory, interactive jobs overtake it, partial results are a prefix, and cancelling it (and a
batch queued behind it) stops every chunk that has not started.

Where a test needs the batch still running, it does not race the model: it freezes the worker (SIGSTOP)
while the batch is part done, so the state holds however fast the machine is."""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass

import numpy as np
import orjson
import pytest
from rq.job import Job
from rq.registry import StartedJobRegistry

from inferq import Client
from shared import rq_keys
from shared.schema import OrjsonSerializer
from tests.support import wait_until

pytestmark = pytest.mark.e2e

ROWS = 819_200  # × 64 float32 = 200 MiB


class FrozenWorker:
    """The shared service's one worker, frozen with SIGSTOP while a test looks at a part-done batch."""

    def __init__(self, service) -> None:
        self.service = service
        [self.worker] = service.live_worker_processes()
        self.frozen = False

    def freeze(self) -> None:
        if not self.frozen:
            self.service.signal_worker(self.worker, signal.SIGSTOP)
            self.frozen = True

    def thaw(self) -> None:
        if self.frozen:
            self.service.signal_worker(self.worker, signal.SIGCONT)
            self.frozen = False


@dataclass
class LargeBatch:
    id: str
    baseline_kb: int
    peak_kb: int
    worker: FrozenWorker  # frozen once the batch is part done, so that it stays running until a test lets it go


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


@pytest.fixture(scope="module")
def large_batch(service, digits, tmp_path_factory):
    path = tmp_path_factory.mktemp("large") / "rows.npy"
    rows = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(ROWS, 64))
    for start in range(0, ROWS, len(digits[0])):
        rows[start : start + len(digits[0])] = digits[0][: ROWS - start]
    rows.flush()
    del rows
    (pid,) = service.api_worker_pids()
    with Client(service.base_url) as client:
        client.predict(digits[0][:1])  # the API process has served a request before the baseline is taken
        baseline = peak = rss_kb(pid)
        uploaded = threading.Event()

        def sample():
            nonlocal peak
            while not uploaded.wait(0.02):
                peak = max(peak, rss_kb(pid))

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            batch = client.submit_batch(str(path))
        finally:
            uploaded.set()
            sampler.join()
        path.unlink()
        worker = FrozenWorker(service)
        try:
            wait_until(lambda: service.http.get(f"/batches/{batch.id}").json()["done_rows"] > 0, 60)
            worker.freeze()
            yield LargeBatch(batch.id, baseline, peak, worker)
        finally:
            worker.thaw()
            service.http.delete(f"/batches/{batch.id}")  # in case a test failed before cancelling it


def test_a_200_mib_upload_streams_through_the_api_in_bounded_memory(service, large_batch):
    doc = service.http.get(f"/batches/{large_batch.id}").json()
    assert doc["total_rows"] == ROWS and doc["status"] in ("queued", "in_progress")
    grew_mb = (large_batch.peak_kb - large_batch.baseline_kb) / 1024
    assert grew_mb < 40, f"the API process grew by {grew_mb:.0f} MB while a 200 MiB file streamed in"


def test_interactive_jobs_submitted_while_a_large_batch_runs_finish_before_it(service, large_batch, digits):
    x, y = digits
    before = service.http.get(f"/batches/{large_batch.id}").json()
    assert before["status"] == "in_progress" and 0 < before["done_rows"] < ROWS
    job_ids = [service.http.post("/predict", json={"instances": [x[i].tolist()]}).json()["id"] for i in range(5)]
    large_batch.worker.thaw()  # it claims the interactive jobs before the batch's next chunk
    try:
        bodies = [service.http.get(f"/result/{job_id}", params={"wait": 20}).json() for job_id in job_ids]
    finally:
        large_batch.worker.freeze()
    assert [b["status"] for b in bodies] == ["finished"] * 5
    assert [int(np.argmax(b["predictions"][0])) for b in bodies] == list(y[:5])
    doc = service.http.get(f"/batches/{large_batch.id}").json()
    assert doc["status"] == "in_progress" and doc["done_rows"] < ROWS


def test_partial_results_of_a_running_batch_are_the_finished_prefix(service, large_batch):
    doc = service.http.get(f"/batches/{large_batch.id}").json()  # the worker is frozen: nothing moves
    assert doc["status"] == "in_progress" and 0 < doc["done_rows"] < ROWS
    running = service.http.get(f"/batches/{large_batch.id}/results")
    assert running.status_code == 409 and "partial=true" in running.json()["error"]["expected"]
    with service.http.stream("GET", f"/batches/{large_batch.id}/results", params={"partial": "true"}) as response:
        assert response.status_code == 200
        assert response.headers["X-Batch-Status"] == "in_progress"
        assert int(response.headers["X-Rows"]) == doc["done_rows"]
        rows = [orjson.loads(line)["row"] for line in response.iter_lines()]
    assert rows == list(range(doc["done_rows"]))


def test_cancel_stops_every_chunk_that_has_not_started(service, large_batch, digits):
    body = orjson.dumps(digits[0][:1500].tolist()).replace(b"],[", b"]\n[")[1:-1]
    queued = service.upload(body, "application/x-ndjson").json()["id"]  # behind the large batch in the bulk queue
    cancelled = service.http.delete(f"/batches/{queued}")
    assert cancelled.status_code == 200
    assert (cancelled.json()["status"], cancelled.json()["done_rows"]) == ("cancelled", 0)
    large = service.http.delete(f"/batches/{large_batch.id}")  # the worker is frozen mid-batch
    assert large.status_code == 200 and large.json()["status"] == "cancelled"
    large_batch.worker.thaw()

    started = StartedJobRegistry("predict-bulk", connection=service.redis)
    wait_until(
        lambda: service.redis.llen(rq_keys.queue(service.settings.bulk_queue_name)) == 0 and started.count == 0, 60
    )
    doc = service.http.get(f"/batches/{large_batch.id}").json()
    assert 0 < doc["done_rows"] < ROWS and doc["status"] == "cancelled"
    assert service.http.get(f"/batches/{queued}").json()["done_rows"] == 0
    jobs = Job.fetch_many([f"{queued}-0", f"{queued}-1"], connection=service.redis, serializer=OrjsonSerializer)
    assert [job.get_status() for job in jobs] == ["canceled", "canceled"]
    results = service.http.get(f"/batches/{large_batch.id}/results", headers={"Accept": "application/x-npy"})
    assert results.status_code == 200 and int(results.headers["X-Rows"]) == doc["done_rows"]
    assert service.http.delete(f"/batches/{large_batch.id}").status_code == 409
