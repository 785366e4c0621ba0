"""The blocking client: `Client`, with `Job` and `Batch` handles. Only I/O lives here; `core.py` decides
what to send and what the answers mean. `aio.py` is the same file for asyncio, method for method."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx

from client import core
from client.progress import Bar, BatchProgress


class Client:
    """A client of one service: `Client("http://127.0.0.1:8000")`; use it as a context manager."""

    def __init__(self, base_url: str, *, timeout_s: float = 60.0, max_connections: int = 16, max_retries: int = 5,
                 backoff_s: float = 0.5, http: httpx.Client | None = None) -> None:
        self.max_retries, self.backoff_s = max_retries, backoff_s
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        # A long-poll may hold its request for MAX_SERVER_WAIT_S; the read timeout must outlast it. No pool
        # timeout: a request waits for a free connection as long as it takes.
        timeout = httpx.Timeout(max(timeout_s, core.MAX_SERVER_WAIT_S + 10), pool=None)
        self.http = http or httpx.Client(base_url=base_url, limits=limits, timeout=timeout)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def predict(self, rows: Any, timeout: float = 30.0, callback_url: str | None = None) -> Any:
        """Predictions for `rows` (waits up to `timeout` s); raises JobFailed, WaitTimeout or an APIError."""
        return self._run(core.predict(rows, timeout, callback_url))

    def submit(self, rows: Any, callback_url: str | None = None) -> "Job":
        """Enqueue `rows` as one job and return its handle at once."""
        return Job(self, self._call(core.submit_call(rows, callback_url=callback_url))["id"])

    def job(self, job_id: str) -> "Job":
        return Job(self, job_id)

    def submit_batch(self, source: Any, on_error: str | None = None, callback_url: str | None = None,
                     metadata: dict | None = None, progress: bool = False) -> "Batch":
        """Upload a file (.ndjson/.jsonl/.csv/.npy path) or a numpy array as a batch; returns its handle.

        The file is streamed, never read whole; `progress` shows a bar of bytes sent.
        """
        call = core.submit_batch_call(source, on_error, callback_url, metadata)
        bar = Bar("upload", "B", call.upload.size, unit_scale=True) if progress else None
        try:
            doc = self._send(call, None, stream=False, on_bytes=bar.add if bar else None).json()
        finally:
            if bar:
                bar.close()
        return Batch(self, doc["id"], doc)

    def batch(self, batch_id: str) -> "Batch":
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

    def _send(self, call: core.Call, headers: dict[str, str] | None, stream: bool,
              on_bytes: Any = None) -> httpx.Response:
        """Send with retries on 429/503; returns a successful response (streamed if asked) or raises."""
        for attempt in range(self.max_retries + 1):
            content, body_headers = _body(call, on_bytes)
            request = self.http.build_request(call.method, call.path, params=call.params, json=call.json,
                                              content=content, headers={**(headers or {}), **body_headers})
            response = self.http.send(request, stream=stream)
            if response.is_success:
                return response
            body = response.read()
            response.close()
            delay = core.retry_delay(response.status_code, response.headers, attempt, self.max_retries, self.backoff_s)
            if delay is None:
                raise core.error_from(response.status_code, response.headers, body)
            time.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _lines(self, call: core.Call, headers: dict[str, str]) -> Iterator[dict]:
        response = self._send(call, headers, stream=True)
        try:
            for line in response.iter_lines():
                if line:
                    yield json.loads(line)
        finally:
            response.close()

    def _download(self, call: core.Call, headers: dict[str, str], path: str) -> int:
        response = self._send(call, headers, stream=True)
        written = 0
        try:
            with open(path, "wb") as file:
                for piece in response.iter_bytes(core.READ_BYTES):
                    written += file.write(piece)
        finally:
            response.close()
        return written


class Job:
    """A submitted job."""

    def __init__(self, client: Client, job_id: str) -> None:
        self.client, self.id = client, job_id

    def status(self) -> str:
        """queued, started, finished, failed or canceled."""
        return self.client._call(core.Call("GET", f"/result/{self.id}"))["status"]

    def result(self, timeout: float = 60.0) -> Any:
        """The predictions, waiting up to `timeout` s; raises JobFailed, JobCanceled or WaitTimeout."""
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
    return call.upload.pieces(on_bytes), {"Content-Type": call.upload.content_type,
                                          "Content-Length": str(call.upload.size)}
