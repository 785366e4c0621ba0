"""inferq: the Python client of the batched-inference service, `Client` (blocking) and `AsyncClient` (asyncio).

It needs only httpx (numpy to send arrays, tqdm for progress bars, both optional), never TensorFlow:

    from inferq import Client
    with Client("http://127.0.0.1:8000", api_key="...") as c:   # defaults: $INFERQ_URL, $INFERQ_API_KEY
        predictions = c.predict(rows)
        batch = c.submit_batch("rows.npy")
        batch.wait(progress=True)
        batch.download("predictions.ndjson")

`inferq --help` (or `python -m inferq --help`) is the same from a shell.
"""

from inferq.aio import AsyncBatch, AsyncClient, AsyncJob
from inferq.errors import (
    APIError,
    ClientError,
    Conflict,
    ConnectionFailed,
    InferenceFailed,
    InvalidInput,
    JobCanceled,
    JobExpired,
    JobFailed,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    NotReady,
    PayloadTooLarge,
    QueueFull,
    RequestInProgress,
    RequestTimedOut,
    ServerError,
    StorageUnavailable,
    TimedOut,
    TransportError,
    Unauthorized,
    UnsupportedMediaType,
    UriTooLong,
    WaitTimeout,
)
from inferq.sync import Batch, Client, Job

__all__ = [
    "APIError",
    "AsyncBatch",
    "AsyncClient",
    "AsyncJob",
    "Batch",
    "Client",
    "ClientError",
    "Conflict",
    "ConnectionFailed",
    "InferenceFailed",
    "InvalidInput",
    "Job",
    "JobCanceled",
    "JobExpired",
    "JobFailed",
    "MethodNotAllowed",
    "NotAcceptable",
    "NotFound",
    "NotReady",
    "PayloadTooLarge",
    "QueueFull",
    "RequestInProgress",
    "RequestTimedOut",
    "StorageUnavailable",
    "ServerError",
    "TimedOut",
    "TransportError",
    "Unauthorized",
    "UnsupportedMediaType",
    "UriTooLong",
    "WaitTimeout",
]
