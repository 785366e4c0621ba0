"""A Python client for the batched-inference service: `Client` (blocking) and `AsyncClient` (asyncio).

It needs only httpx (numpy to send arrays, tqdm for progress bars, both optional), never TensorFlow:

    from client import Client
    with Client("http://127.0.0.1:8000") as c:
        predictions = c.predict(rows)
        batch = c.submit_batch("rows.npy")
        batch.wait(progress=True)
        batch.download("predictions.ndjson")

`python -m client --help` is the same from a shell.
"""

from client.aio import AsyncBatch, AsyncClient, AsyncJob
from client.errors import (APIError, ClientError, Conflict, InvalidInput, JobCanceled, JobFailed, NotAcceptable,
                           NotFound, NotReady, PayloadTooLarge, QueueFull, ServerError, UnsupportedMediaType,
                           WaitTimeout)
from client.sync import Batch, Client, Job

__all__ = [
    "APIError", "AsyncBatch", "AsyncClient", "AsyncJob", "Batch", "Client", "ClientError", "Conflict", "InvalidInput",
    "Job", "JobCanceled", "JobFailed", "NotAcceptable", "NotFound", "NotReady", "PayloadTooLarge", "QueueFull",
    "ServerError", "UnsupportedMediaType", "WaitTimeout",
]
