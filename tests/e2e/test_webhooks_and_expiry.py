"""Webhooks (signed, retried, never failing the job) and batch expiry, on one service with a webhook
secret, fast retries and a short BATCH_TTL. The receiver is a tiny local HTTP server."""

from __future__ import annotations

import io
import os
import queue
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import orjson
import pytest

from shared import keys
from shared.webhooks import verify
from tests.support import copy_models, wait_until

pytestmark = pytest.mark.e2e

SECRET = "test-secret"


class Receiver:
    """Records every POST (headers, body) and answers with `status`."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.calls: queue.Queue = queue.Queue()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.put((dict(self.headers), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def next_call(self, timeout_s: float = 20.0) -> tuple[dict, bytes]:
        return self.calls.get(timeout=timeout_s)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def hooks(make_module_service):
    return make_module_service(webhook_secret=SECRET, webhook_backoff_s=0.2, webhook_max_attempts=3, batch_ttl=3)


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_a_finished_job_posts_its_signed_result_to_the_callback_url(hooks, receiver, digits):
    response = hooks.http.post(
        "/predict", params={"wait": 10, "callback_url": receiver.url}, json={"instances": [digits[0][0].tolist()]}
    )
    assert response.json()["status"] == "finished"
    headers, body = receiver.next_call()
    assert verify(body, SECRET, headers["X-Webhook-Signature"])
    assert not verify(body + b" ", SECRET, headers["X-Webhook-Signature"])
    assert orjson.loads(body) == response.json()
    assert headers["X-Webhook-Event"] == "job.finished" and headers["X-Webhook-Attempt"] == "1"


def test_a_completed_batch_posts_its_signed_status_document(hooks, receiver, digits):
    created = hooks.upload(npy_bytes(digits[0][:50]), "application/x-npy", callback_url=receiver.url)
    headers, body = receiver.next_call()
    assert verify(body, SECRET, headers["X-Webhook-Signature"])
    doc = orjson.loads(body)
    assert (doc["id"], doc["status"], doc["done_rows"]) == (created.json()["id"], "completed", 50)
    assert headers["X-Webhook-Event"] == "batch.completed"


def test_a_cancelled_batch_posts_its_status_document(hooks, receiver, digits):
    # The worker is frozen (SIGSTOP) from the upload to the cancel, so the DELETE finds the batch not yet
    # ended however fast the model runs; once thawed, it drops the cancelled chunks and sends the webhook.
    [worker] = hooks.live_worker_processes()
    hooks.signal_worker(worker, signal.SIGSTOP)
    try:
        created = hooks.upload(npy_bytes(digits[0][:50]), "application/x-npy", callback_url=receiver.url)
        batch_id = created.json()["id"]
        assert hooks.http.delete(f"/batches/{batch_id}").json()["status"] == "cancelled"
    finally:
        hooks.signal_worker(worker, signal.SIGCONT)
    headers, body = receiver.next_call()
    assert verify(body, SECRET, headers["X-Webhook-Signature"])
    assert headers["X-Webhook-Event"] == "batch.cancelled" and orjson.loads(body)["id"] == batch_id


def test_a_failing_receiver_is_retried_then_given_up_without_failing_the_job(hooks, digits):
    failing = Receiver(status=500)
    try:
        response = hooks.http.post(
            "/predict", params={"wait": 10, "callback_url": failing.url}, json={"instances": [digits[0][0].tolist()]}
        )
        assert response.json()["status"] == "finished"
        attempts = [failing.next_call()[0]["X-Webhook-Attempt"] for _ in range(3)]
        assert attempts == ["1", "2", "3"]
        wait_until(lambda: hooks.redis.zcard(keys.webhooks()) == 0, 10)  # given up and forgotten
        assert failing.calls.empty()
        assert hooks.http.get(f"/result/{response.json()['id']}").json()["status"] == "finished"
    finally:
        failing.close()


def test_an_unusable_callback_url_is_rejected_before_anything_runs(hooks, digits):
    response = hooks.http.post(
        "/predict", params={"callback_url": "ftp://example.com/x"}, json={"instances": [digits[0][0].tolist()]}
    )
    assert response.status_code == 400 and response.json()["error"]["field"] == "callback_url"
    assert hooks.upload(b"[0]\n", "application/x-ndjson", callback_url="nope").status_code == 400


def test_an_expired_batch_reads_expired_and_its_files_are_deleted(hooks, digits):
    batch_id = hooks.upload(npy_bytes(digits[0][:20]), "application/x-npy").json()["id"]
    assert hooks.wait_batch(batch_id)["status"] == "completed"
    files = os.path.join(hooks.settings.data_dir, "batches", batch_id)
    assert os.listdir(files)
    doc = hooks.wait_batch(batch_id, timeout_s=30, statuses=("expired",))
    assert doc["output_url"] is None
    assert not os.path.exists(files)
    assert hooks.http.get(f"/batches/{batch_id}/results").status_code == 404


def test_callback_urls_outside_webhook_allowed_hosts_are_refused_on_predict_and_batches(service, make_service):
    guarded = make_service(workers=0, webhook_allowed_hosts="hooks.example.com")
    copy_models(service.redis, guarded.redis)  # what a worker would advertise
    for response in (
        guarded.http.post("/predict", params={"callback_url": "http://169.254.169.254/latest"}, json=[[0.0] * 64]),
        guarded.http.post(
            "/batches",
            params={"callback_url": "http://127.0.0.1:6379/"},
            content=b"[0]\n",
            headers={"Content-Type": "application/x-ndjson"},
        ),
    ):
        assert response.status_code == 400
        assert response.json()["error"]["field"] == "callback_url"
        assert "hooks.example.com" in response.json()["error"]["expected"]
