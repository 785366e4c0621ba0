"""Everything the clients do that is not I/O: build each call, turn each answer into a result or a typed
error, and express "wait until done" as a flow (when to retry is `retries.py`).

A flow is a generator that yields what to do next, a `Call` (send it, and send the parsed JSON answer
back in) or a `Sleep`, and returns the final value. `sync.py` and `aio.py` drive the same flows with
blocking and with asyncio I/O, as httpx drives one `auth_flow` both ways.
"""

from __future__ import annotations

import dataclasses
import email.utils
import io
import os
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from inferq import errors

DEFAULT_URL = "http://127.0.0.1:8000"
URL_VARIABLE, API_KEY_VARIABLE = "INFERQ_URL", "INFERQ_API_KEY"
MAX_SERVER_WAIT_S = 30.0  # the longest ?wait the server accepts
# The server's vocabulary, copied (this package never imports the server); tests/unit/test_vocabulary.py
# fails when the server's own definitions gain or lose a value.
JOB_STATUSES = ("queued", "started", "finished", "failed", "canceled", "expired")
JOB_TERMINAL = ("finished", "failed", "canceled", "expired")
BATCH_STATUSES = ("validating", "queued", "in_progress", "completed", "failed", "cancelled", "expired")
BATCH_TERMINAL = ("completed", "failed", "cancelled", "expired")
JOB_ERROR_CODES = (
    "deadline_exceeded",
    "worker_lost",
    "inference_failed",
    "invalid_payload",
    "storage_failed",
    "version_unavailable",
)
IDEMPOTENCY_HEADER = "Idempotency-Key"
UPLOAD_TYPES = {
    ".ndjson": "application/x-ndjson",
    ".jsonl": "application/x-ndjson",
    ".csv": "text/csv",
    ".npy": "application/x-npy",
}
NDJSON, NPY = "application/x-ndjson", "application/x-npy"
READ_BYTES = 1 << 20


@dataclass
class Call:
    """One HTTP request to make; `upload` streams a file (or bytes) as the body.

    `resendable`: sending it twice does no harm (a read, or a submit carrying an Idempotency-Key), so it
    may be sent again after an exchange that broke off with no answer.
    """

    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    upload: Upload | None = None
    headers: dict[str, str] = field(default_factory=dict)
    resendable: bool = False

    def __post_init__(self) -> None:
        self.resendable = self.resendable or self.method == "GET"


@dataclass
class Sleep:
    seconds: float


@dataclass
class Upload:
    """A request body read in READ_BYTES pieces: a file path, or bytes (an array saved as .npy)."""

    content_type: str
    size: int
    path: str | None = None
    data: bytes | None = None

    def pieces(self, on_bytes: Callable[[int], None] | None = None) -> Iterator[bytes]:
        """The body, piece by piece (a plain generator: reading a local file is quick enough for asyncio)."""
        stream = open(self.path, "rb") if self.path is not None else io.BytesIO(self.data or b"")
        with stream:
            while piece := stream.read(READ_BYTES):
                if on_bytes:
                    on_bytes(len(piece))
                yield piece


Flow = Generator["Call | Sleep", Any, Any]


# Settings -------------------------------------------------------------------------------------------------


def base_url(url: str | None, environ: Mapping[str, str] | None = None) -> str:
    """`url` if given, else $INFERQ_URL, else DEFAULT_URL."""
    environ = os.environ if environ is None else environ
    return url or environ.get(URL_VARIABLE) or DEFAULT_URL


def auth_headers(api_key: str | None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The Authorization header for `api_key`, else for $INFERQ_API_KEY; none when neither is set."""
    environ = os.environ if environ is None else environ
    key = api_key if api_key is not None else environ.get(API_KEY_VARIABLE, "")
    return {"Authorization": f"Bearer {key}"} if key else {}


# Requests -------------------------------------------------------------------------------------------------


def rows_json(rows: Any) -> list:
    """Rows as JSON-ready lists (a numpy array is converted; numpy itself is optional)."""
    return rows.tolist() if hasattr(rows, "tolist") else list(rows)


MODEL_ROUTES = ("/predict", "/batches")  # the routes that take ?model= and ?version=


def model_params(model: str | None, version: str | None) -> dict[str, str]:
    """The query parameters naming a model and its version (a number or a label); {} for the server's default
    (its first model, the newest version)."""
    return {k: v for k, v in (("model", model), ("version", version)) if v}


def for_model(call: Call, params: dict[str, str]) -> Call:
    """`call` with the client's model parameters, if it submits work (/predict, /batches)."""
    if not params or call.method != "POST" or call.path not in MODEL_ROUTES:
        return call
    return dataclasses.replace(call, params={**params, **call.params})


def idempotent(key: str | None) -> dict[str, str]:
    """The Idempotency-Key header: `key`, or a new random one, so that the submit can be resent safely."""
    return {IDEMPOTENCY_HEADER: key or uuid.uuid4().hex}


def submit_call(
    rows: Any, wait_s: float = 0.0, callback_url: str | None = None, idempotency_key: str | None = None
) -> Call:
    params: dict[str, Any] = {"wait": round(min(wait_s, MAX_SERVER_WAIT_S), 3)} if wait_s > 0 else {}
    if callback_url:
        params["callback_url"] = callback_url
    return Call(
        "POST",
        "/predict",
        params=params,
        json={"instances": rows_json(rows)},
        headers=idempotent(idempotency_key),
        resendable=True,
    )


def batch_upload(source: Any) -> Upload:
    """What to send for `submit_batch`: a path (.ndjson/.jsonl/.csv/.npy) or a numpy array."""
    if hasattr(source, "dtype") and hasattr(source, "shape"):
        import numpy as np  # only needed for arrays, which means numpy is there

        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(source), allow_pickle=False)
        return Upload(NPY, buffer.tell(), data=buffer.getvalue())
    path = os.fspath(source)
    extension = os.path.splitext(path)[1].lower()
    if extension not in UPLOAD_TYPES:
        raise ValueError(f"cannot tell the format of {path!r}: expected a .ndjson, .jsonl, .csv or .npy file")
    return Upload(UPLOAD_TYPES[extension], os.path.getsize(path), path=path)


def submit_batch_call(
    source: Any,
    on_error: str | None = None,
    callback_url: str | None = None,
    metadata: dict | None = None,
    idempotency_key: str | None = None,
) -> Call:
    params: dict[str, Any] = {}
    if on_error:
        params["on_error"] = on_error
    if callback_url:
        params["callback_url"] = callback_url
    if metadata is not None:
        import json

        params["metadata"] = json.dumps(metadata)
    return Call(
        "POST",
        "/batches",
        params=params,
        upload=batch_upload(source),
        headers=idempotent(idempotency_key),
        resendable=True,
    )


def results_call(batch_id: str, partial: bool = False, npy: bool = False) -> tuple[Call, dict[str, str]]:
    """The results download and the headers that pick its format."""
    params = {"partial": "true"} if partial else {}
    return Call("GET", f"/batches/{batch_id}/results", params=params), {"Accept": NPY if npy else NDJSON}


# Answers --------------------------------------------------------------------------------------------------


def error_from(status: int, headers: Any, body: bytes) -> errors.APIError:
    """The typed error for an error answer (our JSON shape, or anything a proxy sends)."""
    import json

    try:
        info = json.loads(body)["error"]
        message, code = str(info["message"]), str(info["code"])
    except (ValueError, KeyError, TypeError):
        info, code = {}, None
        message = body[:200].decode("utf-8", "replace").strip() or f"HTTP {status}"
    cls = (
        errors.BY_CODE.get(code or "")
        or errors.BY_STATUS.get(status)
        or (errors.ServerError if status >= 500 else errors.APIError)
    )
    return cls(
        message,
        status=status,
        code=code or cls.code or str(status),
        field=info.get("field"),
        expected=info.get("expected"),
        details=info.get("details"),
        retry_after=retry_after(headers),
    )


def retry_after(headers: Any) -> float | None:
    """Retry-After in seconds (delta seconds or an HTTP date), if the answer has one."""
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def job_outcome(doc: dict) -> Any:
    """The predictions of a finished job's document; JobFailed, JobExpired or JobCanceled otherwise."""
    status, error = doc["status"], doc.get("error") or {}
    if status == "finished":
        return doc["predictions"]
    if status == "failed":
        raise errors.JobFailed(doc["id"], error.get("code", "failed"), error.get("message", ""))
    if status == "expired":
        raise errors.JobExpired(doc["id"], error.get("message", ""))
    if status == "canceled":
        raise errors.JobCanceled(doc["id"])
    raise ValueError(f"job {doc['id']} is {status!r}, not one of the statuses that end a job: {JOB_TERMINAL}")


# Flows ----------------------------------------------------------------------------------------------------


def wait_job(job_id: str, timeout_s: float) -> Flow:
    """Long-poll the job until it ends or `timeout_s` passes; returns its final document."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        doc = yield Call("GET", f"/result/{job_id}", params={"wait": round(max(0.0, min(left, MAX_SERVER_WAIT_S)), 3)})
        if doc["status"] in JOB_TERMINAL:
            return doc
        if time.monotonic() >= deadline:
            raise errors.WaitTimeout(f"job {job_id}", timeout_s)


def predict(rows: Any, timeout_s: float, callback_url: str | None = None, idempotency_key: str | None = None) -> Flow:
    """Submit with ?wait, fall back to long-polling; returns the predictions."""
    started = time.monotonic()
    doc = yield submit_call(rows, timeout_s, callback_url, idempotency_key)
    if doc["status"] not in JOB_TERMINAL:
        doc = yield from wait_job(doc["id"], max(0.0, timeout_s - (time.monotonic() - started)))
    return job_outcome(doc)


def job_result(job_id: str, timeout_s: float) -> Flow:
    return job_outcome((yield from wait_job(job_id, timeout_s)))


def wait_batch(
    batch_id: str, timeout_s: float | None, poll_interval_s: float, on_status: Callable[[dict], None] | None = None
) -> Flow:
    """Poll the batch every `poll_interval_s` until it ends; returns its final document."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        doc = yield Call("GET", f"/batches/{batch_id}")
        if on_status:
            on_status(doc)
        if doc["status"] in BATCH_TERMINAL:
            return doc
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise errors.WaitTimeout(f"batch {batch_id}", timeout_s or 0.0)
        yield Sleep(poll_interval_s if left is None else min(poll_interval_s, left))
