"""The blocking client: `Client`, with `Job` and `Batch` handles. Only I/O lives here; `core.py` decides
what to send and what the answers mean. `aio.py` is the same file for asyncio, method for method."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx

from inferq import core
from inferq.progress import Bar, BatchProgress
from inferq.retries import Retries, transport_error


class Client:
    """A client of one service: `Client("http://127.0.0.1:8000", api_key=...)`; use it as a context manager.

    `base_url` defaults to $INFERQ_URL, else http://127.0.0.1:8000; `api_key` to $INFERQ_API_KEY. Calls
    refused with 429/503, and calls that got no answer but are safe to resend (reads, and submits, which
    carry an Idempotency-Key), are sent again up to `max_retries` times, with jittered exponential backoff
    from `backoff_s`. `model` and `version` (a number or a label) pick what predictions and batches run on;
    by default the service's first model, the newest version when a worker takes the job.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_connections: int = 16,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        http: httpx.Client | None = None,
        model: str | None = None,
        version: str | None = None,
    ) -> None:
        self.base_url = core.base_url(base_url)
        self.model_params = core.model_params(model, version)
        self.retries = Retries(max_retries, backoff_s)
        self.headers = core.auth_headers(api_key)
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        # A long-poll may hold its request for MAX_SERVER_WAIT_S; the read timeout must outlast it. No pool
        # timeout: a request waits for a free connection as long as it takes.
        timeout = httpx.Timeout(max(timeout_s, core.MAX_SERVER_WAIT_S + 10), pool=None)
        self.http = http or httpx.Client(base_url=self.base_url, limits=limits, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def predict(
        self, rows: Any, timeout: float = 30.0, callback_url: str | None = None, idempotency_key: str | None = None
    ) -> Any:
        """Predictions for `rows` (waits up to `timeout` s).

        Raises JobFailed, JobExpired, JobCanceled, WaitTimeout, an APIError or a TransportError.
        """
        return self._run(core.predict(rows, timeout, callback_url, idempotency_key))

    def submit(self, rows: Any, callback_url: str | None = None, idempotency_key: str | None = None) -> Job:
        """Enqueue `rows` as one job and return its handle at once (one job, however often it is resent)."""
        call = core.submit_call(rows, callback_url=callback_url, idempotency_key=idempotency_key)
        return Job(self, self._call(call)["id"])

    def job(self, job_id: str) -> Job:
        return Job(self, job_id)

    def submit_batch(
        self,
        source: Any,
        on_error: str | None = None,
        callback_url: str | None = None,
        metadata: dict | None = None,
        progress: bool = False,
        idempotency_key: str | None = None,
    ) -> Batch:
        """Upload a file (.ndjson/.jsonl/.csv/.npy path) or a numpy array as a batch; returns its handle.

        The file is streamed, never read whole; `progress` shows a bar of bytes sent.
        """
        call = core.submit_batch_call(source, on_error, callback_url, metadata, idempotency_key)
        assert call.upload is not None  # an upload call always carries its file
        bar = Bar("upload", "B", call.upload.size, unit_scale=True) if progress else None
        try:
            doc = self._send(call, None, stream=False, on_bytes=bar.add if bar else None).json()
        finally:
            if bar:
                bar.close()
        return Batch(self, doc["id"], doc)

    def batch(self, batch_id: str) -> Batch:
        return Batch(self, batch_id)

    def _run(self, flow: core.Flow) -> Any:
        """Drive a core flow: make its calls, sleep its sleeps, return its value."""
        reply = None
        try:
            while True:
                step = flow.send(reply)
                if isinstance(step, core.Sleep):
                    time.sleep(step.seconds)
                    reply = None
                else:
                    reply = self._call(step)
        except StopIteration as done:
            return done.value

    def _call(self, call: core.Call, headers: dict[str, str] | None = None) -> Any:
        response = self._send(call, headers, stream=False)
        return response.json()

    def _send(
        self, call: core.Call, headers: dict[str, str] | None, stream: bool, on_bytes: Any = None
    ) -> httpx.Response:
        """Send, again after a 429/503 or no answer where that is safe; a successful response, or raises."""
        call = core.for_model(call, self.model_params)
        for attempt in itertools.count():
            content, body_headers = _body(call, on_bytes)
            request = self.http.build_request(
                call.method,
                call.path,
                params=call.params,
                json=call.json,
                content=content,
                headers={**self.headers, **call.headers, **(headers or {}), **body_headers},
            )
            try:
                response = self.http.send(request, stream=stream)
                if response.is_success:
                    return response
                body = response.read()
                response.close()
            except httpx.TransportError as exc:
                delay = self.retries.after_no_answer(call, exc, attempt)
                if delay is None:
                    raise transport_error(exc, call.method, str(request.url), attempt + 1) from exc
            else:
                error = core.error_from(response.status_code, response.headers, body)
                delay = self.retries.after_answer(error, attempt)
                if delay is None:
                    raise error
            time.sleep(delay)
        raise AssertionError("unreachable: attempts go on until one returns or raises")

    def _stream(self, response: httpx.Response, pieces: Iterator[Any]) -> Iterator[Any]:
        """The pieces of a streamed answer; a connection lost midway raises the client's own error."""
        try:
            yield from pieces
        except httpx.TransportError as exc:
            raise transport_error(exc, response.request.method, str(response.request.url), 1) from exc
        finally:
            response.close()

    def _lines(self, call: core.Call, headers: dict[str, str]) -> Iterator[dict]:
        response = self._send(call, headers, stream=True)
        for line in self._stream(response, response.iter_lines()):
            if line:
                yield json.loads(line)

    def _download(self, call: core.Call, headers: dict[str, str], path: str) -> int:
        response = self._send(call, headers, stream=True)
        written = 0
        with open(path, "wb") as file:
            for piece in self._stream(response, response.iter_bytes(core.READ_BYTES)):
                written += file.write(piece)
        return written


class Job:
    """A submitted job."""

    def __init__(self, client: Client, job_id: str) -> None:
        self.client, self.id = client, job_id

    def status(self) -> str:
        """queued, started, finished, failed, canceled or expired."""
        return self.client._call(core.Call("GET", f"/result/{self.id}"))["status"]

    def result(self, timeout: float = 60.0) -> Any:
        """The predictions, waiting up to `timeout` s; raises JobFailed, JobExpired, JobCanceled or WaitTimeout."""
        return self.client._run(core.job_result(self.id, timeout))

    def cancel(self) -> dict:
        """Cancel the job if it has not started (Conflict if it has)."""
        return self.client._call(core.Call("DELETE", f"/jobs/{self.id}"))


class Batch:
    """An uploaded batch; `doc` is its last status document."""

    def __init__(self, client: Client, batch_id: str, doc: dict | None = None) -> None:
        self.client, self.id, self.doc = client, batch_id, doc

    def status(self) -> dict:
        """The batch's status document, fresh from the server."""
        self.doc = self.client._call(core.Call("GET", f"/batches/{self.id}"))
        return self.doc

    def wait(self, timeout: float | None = None, poll_interval: float = 1.0, progress: bool = False) -> dict:
        """Wait until the batch ends (completed, failed, cancelled, expired); a progress bar if asked."""
        bar = BatchProgress(self.id) if progress else None
        try:
            self.doc = self.client._run(core.wait_batch(self.id, timeout, poll_interval, bar))
        finally:
            if bar:
                bar.close()
        return self.doc

    def iter_results(self, partial: bool = False) -> Iterator[dict]:
        """Each row's result in input order: {"row": file row number, "prediction": ...}, streamed."""
        return self.client._lines(*core.results_call(self.id, partial))

    def download(self, path: str, partial: bool = False, npy: bool | None = None) -> int:
        """Save the results to `path` (.npy if it ends so, else NDJSON); returns the bytes written."""
        call, headers = core.results_call(self.id, partial, path.endswith(".npy") if npy is None else npy)
        return self.client._download(call, headers, path)

    def cancel(self) -> dict:
        """Cancel: chunks not started never run; the finished ones stay downloadable."""
        self.doc = self.client._call(core.Call("DELETE", f"/batches/{self.id}"))
        return self.doc


def _body(call: core.Call, on_bytes: Any) -> tuple[Any, dict[str, str]]:
    """The streamed upload body and its headers (a known length lets the server refuse a big file at once)."""
    if call.upload is None:
        return None, {}
    return call.upload.pieces(on_bytes), {
        "Content-Type": call.upload.content_type,
        "Content-Length": str(call.upload.size),
    }
