"""The asyncio client: `AsyncClient`, with `AsyncJob` and `AsyncBatch` handles. Only I/O lives here; it is
`sync.py` method for method, with `await`. One client keeps thousands of jobs in flight over at most
`max_connections` connections: requests wait for a free connection (no pool timeout), not in a queue of ours."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from inferq import core
from inferq.progress import Bar, BatchProgress
from inferq.retries import Retries, transport_error


class AsyncClient:
    """A client of one service: `AsyncClient("http://127.0.0.1:8000", api_key=...)`; an async context manager.

    Settings, defaults and retries as for `Client`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_connections: int = 64,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        http: httpx.AsyncClient | None = None,
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
        self.http = http or httpx.AsyncClient(base_url=self.base_url, limits=limits, timeout=timeout)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.aclose()

    async def predict(
        self, rows: Any, timeout: float = 30.0, callback_url: str | None = None, idempotency_key: str | None = None
    ) -> Any:
        """Predictions for `rows` (waits up to `timeout` s).

        Raises JobFailed, JobExpired, JobCanceled, WaitTimeout, an APIError or a TransportError.
        """
        return await self._run(core.predict(rows, timeout, callback_url, idempotency_key))

    async def submit(self, rows: Any, callback_url: str | None = None, idempotency_key: str | None = None) -> AsyncJob:
        """Enqueue `rows` as one job and return its handle at once (one job, however often it is resent)."""
        call = core.submit_call(rows, callback_url=callback_url, idempotency_key=idempotency_key)
        return AsyncJob(self, (await self._call(call))["id"])

    def job(self, job_id: str) -> AsyncJob:
        return AsyncJob(self, job_id)

    async def submit_batch(
        self,
        source: Any,
        on_error: str | None = None,
        callback_url: str | None = None,
        metadata: dict | None = None,
        progress: bool = False,
        idempotency_key: str | None = None,
    ) -> AsyncBatch:
        """Upload a file (.ndjson/.jsonl/.csv/.npy path) or a numpy array as a batch; returns its handle.

        The file is streamed, never read whole; `progress` shows a bar of bytes sent.
        """
        call = core.submit_batch_call(source, on_error, callback_url, metadata, idempotency_key)
        assert call.upload is not None  # an upload call always carries its file
        bar = Bar("upload", "B", call.upload.size, unit_scale=True) if progress else None
        try:
            doc = (await self._send(call, None, stream=False, on_bytes=bar.add if bar else None)).json()
        finally:
            if bar:
                bar.close()
        return AsyncBatch(self, doc["id"], doc)

    def batch(self, batch_id: str) -> AsyncBatch:
        return AsyncBatch(self, batch_id)

    async def _run(self, flow: core.Flow) -> Any:
        """Drive a core flow: make its calls, sleep its sleeps, return its value."""
        reply = None
        try:
            while True:
                step = flow.send(reply)
                if isinstance(step, core.Sleep):
                    await asyncio.sleep(step.seconds)
                    reply = None
                else:
                    reply = await self._call(step)
        except StopIteration as done:
            return done.value

    async def _call(self, call: core.Call, headers: dict[str, str] | None = None) -> Any:
        response = await self._send(call, headers, stream=False)
        return response.json()

    async def _send(
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
                response = await self.http.send(request, stream=stream)
                if response.is_success:
                    return response
                body = await response.aread()
                await response.aclose()
            except httpx.TransportError as exc:
                delay = self.retries.after_no_answer(call, exc, attempt)
                if delay is None:
                    raise transport_error(exc, call.method, str(request.url), attempt + 1) from exc
            else:
                error = core.error_from(response.status_code, response.headers, body)
                delay = self.retries.after_answer(error, attempt)
                if delay is None:
                    raise error
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: attempts go on until one returns or raises")

    async def _stream(self, response: httpx.Response, pieces: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """The pieces of a streamed answer; a connection lost midway raises the client's own error."""
        try:
            async for piece in pieces:
                yield piece
        except httpx.TransportError as exc:
            raise transport_error(exc, response.request.method, str(response.request.url), 1) from exc
        finally:
            await response.aclose()

    async def _lines(self, call: core.Call, headers: dict[str, str]) -> AsyncIterator[dict]:
        response = await self._send(call, headers, stream=True)
        async for line in self._stream(response, response.aiter_lines()):
            if line:
                yield json.loads(line)

    async def _download(self, call: core.Call, headers: dict[str, str], path: str) -> int:
        response = await self._send(call, headers, stream=True)
        written = 0
        with open(path, "wb") as file:
            async for piece in self._stream(response, response.aiter_bytes(core.READ_BYTES)):
                written += file.write(piece)
        return written


class AsyncJob:
    """A submitted job."""

    def __init__(self, client: AsyncClient, job_id: str) -> None:
        self.client, self.id = client, job_id

    async def status(self) -> str:
        """queued, started, finished, failed, canceled or expired."""
        return (await self.client._call(core.Call("GET", f"/result/{self.id}")))["status"]

    async def result(self, timeout: float = 60.0) -> Any:
        """The predictions, waiting up to `timeout` s; raises JobFailed, JobExpired, JobCanceled or WaitTimeout."""
        return await self.client._run(core.job_result(self.id, timeout))

    async def cancel(self) -> dict:
        """Cancel the job if it has not started (Conflict if it has)."""
        return await self.client._call(core.Call("DELETE", f"/jobs/{self.id}"))


class AsyncBatch:
    """An uploaded batch; `doc` is its last status document."""

    def __init__(self, client: AsyncClient, batch_id: str, doc: dict | None = None) -> None:
        self.client, self.id, self.doc = client, batch_id, doc

    async def status(self) -> dict:
        """The batch's status document, fresh from the server."""
        self.doc = await self.client._call(core.Call("GET", f"/batches/{self.id}"))
        return self.doc

    async def wait(self, timeout: float | None = None, poll_interval: float = 1.0, progress: bool = False) -> dict:
        """Wait until the batch ends (completed, failed, cancelled, expired); a progress bar if asked."""
        bar = BatchProgress(self.id) if progress else None
        try:
            self.doc = await self.client._run(core.wait_batch(self.id, timeout, poll_interval, bar))
        finally:
            if bar:
                bar.close()
        return self.doc

    def iter_results(self, partial: bool = False) -> AsyncIterator[dict]:
        """Each row's result in input order: {"row": file row number, "prediction": ...}, streamed."""
        return self.client._lines(*core.results_call(self.id, partial))

    async def download(self, path: str, partial: bool = False, npy: bool | None = None) -> int:
        """Save the results to `path` (.npy if it ends so, else NDJSON); returns the bytes written."""
        call, headers = core.results_call(self.id, partial, path.endswith(".npy") if npy is None else npy)
        return await self.client._download(call, headers, path)

    async def cancel(self) -> dict:
        """Cancel: chunks not started never run; the finished ones stay downloadable."""
        self.doc = await self.client._call(core.Call("DELETE", f"/batches/{self.id}"))
        return self.doc


def _body(call: core.Call, on_bytes: Any) -> tuple[Any, dict[str, str]]:
    """The streamed upload body and its headers (a known length lets the server refuse a big file at once)."""
    if call.upload is None:
        return None, {}
    return _async_pieces(call.upload, on_bytes), {
        "Content-Type": call.upload.content_type,
        "Content-Length": str(call.upload.size),
    }


async def _async_pieces(upload: core.Upload, on_bytes: Any) -> AsyncIterator[bytes]:
    """httpx's async client streams only async iterables; reading the local file stays a plain read."""
    for piece in upload.pieces(on_bytes):
        yield piece
