"""The client's core (answers to typed errors, retry policy, wait flows) and its retries, driven through
httpx's MockTransport; the real service is exercised in tests/e2e/test_client.py."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import pytest

from client import AsyncClient, Client, core, errors
from shared.config import PROJECT_ROOT


def test_error_answers_become_the_class_of_their_code():
    body = b'{"error": {"code": "invalid_input", "message": "rows have shape [3]", "field": "instances"}}'
    error = core.error_from(400, httpx.Headers(), body)
    assert isinstance(error, errors.InvalidInput) and error.field == "instances"
    assert "rows have shape [3]" in str(error)
    assert isinstance(core.error_from(429, httpx.Headers({"Retry-After": "3"}), b"{}"), errors.QueueFull)
    proxy = core.error_from(502, httpx.Headers(), b"<html>Bad Gateway</html>")
    assert isinstance(proxy, errors.ServerError) and proxy.status == 502


def test_only_429_and_503_are_retried_honouring_retry_after():
    assert core.retry_delay(503, httpx.Headers({"Retry-After": "2"}), 0, 5, 0.5) == 2.0
    assert core.retry_delay(429, httpx.Headers(), 2, 5, 0.5) == 2.0  # 0.5 × 2²
    assert core.retry_delay(429, httpx.Headers(), 5, 5, 0.5) is None  # out of retries
    assert core.retry_delay(500, httpx.Headers(), 0, 5, 0.5) is None


def test_a_failed_or_cancelled_job_raises():
    with pytest.raises(errors.JobFailed, match="inference_failed: boom"):
        core.job_outcome({"id": "j", "status": "failed", "error": {"code": "inference_failed", "message": "boom"}})
    with pytest.raises(errors.JobCanceled):
        core.job_outcome({"id": "j", "status": "canceled"})


def test_predict_flow_falls_back_to_long_polling():
    flow = core.predict([[1.0]], timeout_s=60)
    submit = next(flow)
    assert (submit.method, submit.path, submit.params["wait"]) == ("POST", "/predict", 30.0)
    poll = flow.send({"id": "j", "status": "queued"})
    assert (poll.path, 0 < poll.params["wait"] <= 30) == ("/result/j", True)
    with pytest.raises(StopIteration) as done:
        flow.send({"id": "j", "status": "finished", "predictions": [[0.5]]})
    assert done.value.value == [[0.5]]


def test_batch_wait_flow_polls_at_the_interval_and_reports_each_status():
    seen = []
    flow = core.wait_batch("b", timeout_s=None, poll_interval_s=0.25, on_status=seen.append)
    assert next(flow).path == "/batches/b"
    assert flow.send({"status": "in_progress", "done_rows": 1}) == core.Sleep(0.25)
    assert next(flow).path == "/batches/b"
    with pytest.raises(StopIteration):
        flow.send({"status": "completed", "done_rows": 2})
    assert [doc["done_rows"] for doc in seen] == [1, 2]


def answers(*replies):
    """A MockTransport answering with `replies` in turn, recording the requests."""
    requests = []

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        status, headers, body = replies[min(len(requests), len(replies)) - 1]
        return httpx.Response(status, headers=headers, content=body)

    return httpx.MockTransport(handle), requests


BUSY = (503, {"Retry-After": "0"}, b'{"error": {"code": "not_ready", "message": "no worker yet"}}')
DONE = (200, {}, b'{"id": "j", "status": "finished", "predictions": [[1]]}')


def test_sync_client_retries_503_then_succeeds_and_gives_up_after_max_retries():
    transport, requests = answers(BUSY, BUSY, DONE)
    with Client("http://test", http=httpx.Client(base_url="http://test", transport=transport)) as client:
        assert client.predict([[0]]) == [[1]]
    assert len(requests) == 3
    transport, requests = answers(BUSY)
    with Client("http://test", max_retries=2, http=httpx.Client(base_url="http://test", transport=transport)) as c:
        with pytest.raises(errors.NotReady, match="no worker yet"):
            c.predict([[0]])
    assert len(requests) == 3


def test_async_client_retries_the_same_way():
    transport, requests = answers(BUSY, DONE)

    async def main():
        http = httpx.AsyncClient(base_url="http://test", transport=transport)
        async with AsyncClient("http://test", http=http) as client:
            return await client.predict([[0]])

    assert asyncio.run(main()) == [[1]] and len(requests) == 2


def test_sync_and_async_clients_have_the_same_methods_in_the_same_order():
    from client import aio, sync

    def methods(cls):
        return [name for name in vars(cls) if not name.startswith("__")]

    assert methods(sync.Client) == methods(aio.AsyncClient)
    assert methods(sync.Job) == methods(aio.AsyncJob)
    assert methods(sync.Batch) == methods(aio.AsyncBatch)


def test_the_client_imports_without_tensorflow_numpy_or_the_service():
    code = "import sys, client; assert not {'tensorflow', 'numpy', 'flask', 'redis', 'api', 'worker'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, check=True, timeout=60)
