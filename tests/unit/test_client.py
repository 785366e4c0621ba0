"""The client package `inferq`: its core (answers to typed errors, wait flows), its retry policy, and both
clients' retries, keys and transport errors, driven through httpx's MockTransport; the real service is
exercised in tests/e2e/test_client.py, the installed package in tests/e2e/test_client_package.py."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import pytest

from inferq import AsyncClient, Client, core, errors
from inferq.retries import Retries
from shared.config import PROJECT_ROOT

CLIENT_DIR = PROJECT_ROOT + "/client"


def test_error_answers_become_the_class_of_their_code():
    body = b'{"error": {"code": "invalid_input", "message": "rows have shape [3]", "field": "instances"}}'
    error = core.error_from(400, httpx.Headers(), body)
    assert isinstance(error, errors.InvalidInput) and error.field == "instances"
    assert "rows have shape [3]" in str(error)
    assert isinstance(core.error_from(429, httpx.Headers({"Retry-After": "3"}), b"{}"), errors.QueueFull)
    proxy = core.error_from(502, httpx.Headers(), b"<html>Bad Gateway</html>")
    assert isinstance(proxy, errors.ServerError) and proxy.status == 502


def test_backoff_is_full_jitter_below_an_exponential_ceiling_after_any_retry_after():
    retries = Retries(max_retries=5, backoff_s=0.5, max_backoff_s=3.0)
    assert [retries.backoff(n, rand=lambda: 1.0) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert [retries.backoff(n, rand=lambda: 0.0) for n in range(5)] == [0.0] * 5
    assert retries.backoff(1, retry_after=2.0, rand=lambda: 0.5) == 2.5  # never sooner than Retry-After
    spread = {round(retries.backoff(3), 6) for _ in range(50)}
    assert len(spread) > 40 and all(0 <= d <= 3.0 for d in spread)  # clients refused together do not return together


def test_only_full_queues_unready_servers_and_keys_in_progress_are_retried():
    retries = Retries(max_retries=5, backoff_s=0.5)
    busy = core.error_from(503, httpx.Headers({"Retry-After": "2"}), b"{}")
    assert 2.0 <= retries.after_answer(busy, 0) <= 2.5
    assert retries.after_answer(core.error_from(429, httpx.Headers(), b"{}"), 2) <= 2.0  # 0.5 × 2²
    in_progress = b'{"error": {"code": "request_in_progress", "message": "the first request is running"}}'
    assert retries.after_answer(core.error_from(409, httpx.Headers(), in_progress), 0) is not None
    assert retries.after_answer(busy, 5) is None  # out of retries
    assert retries.after_answer(core.error_from(500, httpx.Headers(), b"{}"), 0) is None
    assert retries.after_answer(core.error_from(409, httpx.Headers(), b"{}"), 0) is None


def test_calls_without_an_answer_are_resent_only_when_that_is_safe():
    retries = Retries(max_retries=5, backoff_s=0.5)
    read_timeout, refused = httpx.ReadTimeout("slow"), httpx.ConnectError("refused")
    cancel, poll = core.Call("DELETE", "/jobs/j"), core.Call("GET", "/result/j")
    submit = core.submit_call([[1.0]])
    assert retries.after_no_answer(poll, read_timeout, 0) is not None
    assert retries.after_no_answer(submit, read_timeout, 0) is not None  # it carries an Idempotency-Key
    assert retries.after_no_answer(cancel, read_timeout, 0) is None  # it may have been done: say so
    assert retries.after_no_answer(cancel, refused, 0) is not None  # never sent: safe to send
    assert retries.after_no_answer(poll, read_timeout, 5) is None


def test_every_submit_carries_its_own_idempotency_key_unless_given_one():
    first, second = core.submit_call([[1.0]]), core.submit_call([[1.0]])
    assert first.headers["Idempotency-Key"] != second.headers["Idempotency-Key"]
    assert len(first.headers["Idempotency-Key"]) == 32
    assert core.submit_call([[1.0]], idempotency_key="order-7").headers == {"Idempotency-Key": "order-7"}


def test_url_and_api_key_come_from_arguments_else_the_environment():
    environ = {"INFERQ_URL": "http://queue:9000", "INFERQ_API_KEY": "k-env"}
    assert core.base_url(None, environ) == "http://queue:9000"
    assert core.base_url("http://other", environ) == "http://other"
    assert core.base_url(None, {}) == "http://127.0.0.1:8000"
    assert core.auth_headers(None, environ) == {"Authorization": "Bearer k-env"}
    assert core.auth_headers("k-arg", environ) == {"Authorization": "Bearer k-arg"}
    assert core.auth_headers(None, {}) == {}


def test_a_failed_expired_or_cancelled_job_raises():
    with pytest.raises(errors.JobFailed, match="inference_failed: boom"):
        core.job_outcome({"id": "j", "status": "failed", "error": {"code": "inference_failed", "message": "boom"}})
    with pytest.raises(errors.JobExpired, match="job j expired: .*never ran"):
        core.job_outcome({"id": "j", "status": "expired", "error": {"code": "deadline_exceeded", "message": "late"}})
    with pytest.raises(errors.JobCanceled):
        core.job_outcome({"id": "j", "status": "canceled"})


def test_waiting_on_an_expired_job_ends_at_the_first_answer():
    flow = core.job_result("j", timeout_s=600)
    assert next(flow).path == "/result/j"
    with pytest.raises(errors.JobExpired):
        flow.send({"id": "j", "status": "expired", "error": {"code": "deadline_exceeded", "message": "late"}})


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
    with Client(
        "http://test", backoff_s=0.01, http=httpx.Client(base_url="http://test", transport=transport)
    ) as client:
        assert client.predict([[0]]) == [[1]]
    assert len(requests) == 3
    assert len({r.headers["Idempotency-Key"] for r in requests}) == 1  # a resent submit is the same submit
    transport, requests = answers(BUSY)
    with Client(
        "http://test", max_retries=2, backoff_s=0.01, http=httpx.Client(base_url="http://test", transport=transport)
    ) as c:
        with pytest.raises(errors.NotReady, match="no worker yet"):
            c.predict([[0]])
    assert len(requests) == 3


def failing(*failures: Exception):
    """A MockTransport raising `failures` in turn, then answering DONE; records the requests."""
    requests = []

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if len(requests) <= len(failures):
            raise failures[len(requests) - 1]
        return httpx.Response(DONE[0], content=DONE[2])

    return httpx.MockTransport(handle), requests


def test_a_submit_that_got_no_answer_is_resent_with_the_same_key():
    transport, requests = failing(httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("reset"))
    with Client("http://test", backoff_s=0.01, http=httpx.Client(base_url="http://test", transport=transport)) as c:
        assert c.submit([[0]]).id == "j"
    assert len(requests) == 3 and len({r.headers["Idempotency-Key"] for r in requests}) == 1


def test_transport_errors_become_the_clients_own_after_the_retries():
    refused = [httpx.ConnectError("[Errno 111] Connection refused")] * 3
    transport, requests = failing(*refused)
    with Client(
        "http://test", max_retries=2, backoff_s=0.01, http=httpx.Client(base_url="http://test", transport=transport)
    ) as c:
        with pytest.raises(errors.ConnectionFailed, match="could not connect: .*refused \\(3 attempts\\)") as failed:
            c.job("j").status()
    assert failed.value.attempts == 3 and len(requests) == 3
    transport, requests = failing(httpx.ReadTimeout("slow"))
    with Client("http://test", backoff_s=0.01, http=httpx.Client(base_url="http://test", transport=transport)) as c:
        with pytest.raises(errors.RequestTimedOut, match="DELETE http://test/jobs/j: timed out waiting for the answer"):
            c.job("j").cancel()  # not resent: the first may have cancelled it
    assert len(requests) == 1


def test_the_api_key_goes_in_every_request_as_a_bearer_token():
    transport, requests = answers(DONE)
    with Client("http://test", api_key="k-1", http=httpx.Client(base_url="http://test", transport=transport)) as c:
        c.predict([[0]])
        c.job("j").status()
    assert [r.headers["Authorization"] for r in requests] == ["Bearer k-1", "Bearer k-1"]


def test_async_client_retries_the_same_way():
    transport, requests = answers(BUSY, DONE)

    async def main():
        http = httpx.AsyncClient(base_url="http://test", transport=transport)
        async with AsyncClient("http://test", api_key="k-2", backoff_s=0.01, http=http) as client:
            return await client.predict([[0]])

    assert asyncio.run(main()) == [[1]] and len(requests) == 2
    assert {r.headers["Authorization"] for r in requests} == {"Bearer k-2"}
    assert len({r.headers["Idempotency-Key"] for r in requests}) == 1


def test_async_client_raises_the_same_transport_errors():
    transport, requests = failing(*[httpx.ConnectError("refused")] * 2)

    async def main():
        http = httpx.AsyncClient(base_url="http://test", transport=transport)
        async with AsyncClient("http://test", max_retries=1, backoff_s=0.01, http=http) as client:
            await client.job("j").status()

    with pytest.raises(errors.ConnectionFailed, match="2 attempts"):
        asyncio.run(main())


def test_sync_and_async_clients_have_the_same_methods_in_the_same_order():
    from inferq import aio, sync

    def methods(cls):
        return [name for name in vars(cls) if not name.startswith("__")]

    assert methods(sync.Client) == methods(aio.AsyncClient)
    assert methods(sync.Job) == methods(aio.AsyncJob)
    assert methods(sync.Batch) == methods(aio.AsyncBatch)


def test_the_client_imports_without_tensorflow_numpy_or_the_service():
    code = (
        "import sys, inferq, inferq.cli; "
        "assert not {'tensorflow', 'numpy', 'flask', 'redis', 'api', 'worker', 'shared'} & set(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=CLIENT_DIR, env={"PATH": "/usr/bin:/bin"}, check=True, timeout=60)


def test_batch_upload_output_fails_for_a_batch_that_failed_or_expired_and_writes_nothing():
    from inferq.cli import BatchDidNotComplete, save_results

    class Ended:
        id = "b"

        def __init__(self, status: str) -> None:
            self.doc = {"status": status, "output_url": None}

        def download(self, path: str) -> int:
            raise AssertionError("nothing to download")

    for status in ("failed", "expired"):
        with pytest.raises(BatchDidNotComplete, match=f"batch b is {status}, not completed: out.npy was not written"):
            save_results(Ended(status), "out.npy")


def test_a_clients_model_and_version_go_only_on_submits():
    params = core.model_params("constant", "canary")
    assert core.for_model(core.submit_call([[0.0]]), params).params == {"model": "constant", "version": "canary"}
    assert core.for_model(core.results_call("b1")[0], params).params == {}
    assert core.model_params(None, None) == {}
