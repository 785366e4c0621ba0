"""What the client raises. API errors mirror the server's error codes; both clients raise the same classes.

    ClientError                          anything this package raises on purpose
     ├── APIError                        the server answered with an error document (status, code, message)
     │    ├── InvalidInput (400)         invalid_input: `field`, `expected`, and for uploads `details`
     │    ├── NotFound (404)             not_found: unknown or purged job or batch
     │    ├── MethodNotAllowed (405)     method_not_allowed: the route has no such method
     │    ├── NotAcceptable (406)        not_acceptable: e.g. .npy results of a multi-output model
     │    ├── Conflict (409)             conflict: e.g. cancelling a finished job, an Idempotency-Key reused
     │    │    └── RequestInProgress (409) request_in_progress: the first request with this
     │    │                              Idempotency-Key is still running (retried first, honouring Retry-After)
     │    ├── PayloadTooLarge (413)      payload_too_large
     │    ├── UriTooLong (414)           uri_too_long: the URL's path and query string are too long
     │    ├── UnsupportedMediaType (415) unsupported_media_type
     │    ├── QueueFull (429)            queue_full (retried first, honouring Retry-After)
     │    ├── NotReady (503)             not_ready (retried first, honouring Retry-After)
     │    │    └── StorageUnavailable (503) storage_unavailable: the object store for batch files is down
     │    ├── Unauthorized (401)         unauthorized: no API key, or not one the server knows
     │    ├── InferenceFailed (500)      inference_failed (protocol routes only)
     │    ├── TimedOut (504)             timed_out (protocol routes only)
     │    └── ServerError (5xx)          internal, or a proxy's error page
     ├── TransportError                  no answer at all: `url`, `attempts` (retried first where safe)
     │    ├── ConnectionFailed           refused, reset, closed before the answer, unknown host
     │    └── RequestTimedOut (also TimeoutError) connect, read or write took too long
     ├── JobFailed                       the job ran and failed: `code`, `message`
     ├── JobCanceled                     the job was cancelled before it ran
     ├── JobExpired                      the job's deadline passed before a worker started it: it never ran
     └── WaitTimeout (also TimeoutError) a wait ran out of time; names the job or batch

The server's vocabulary copied here (error codes below, job and batch statuses in core.py) is checked
against the server's own definitions by the service's tests (tests/unit/test_vocabulary.py).
"""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Base class of every error this package raises on purpose."""


class APIError(ClientError):
    """The server answered with an error: its HTTP status, stable code and message."""

    status = 0
    code = ""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        field: str | None = None,
        expected: str | None = None,
        details: list[Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status if status is not None else type(self).status
        self.code = code if code is not None else type(self).code
        self.field = field
        self.expected = expected
        self.details = details
        self.retry_after = retry_after

    def __str__(self) -> str:
        text = f"{self.status} {self.code}: {self.message}"
        if self.field:
            text += f" (field {self.field!r}"
            text += f"; expected {self.expected})" if self.expected else ")"
        return text


class Unauthorized(APIError):
    status, code = 401, "unauthorized"


class InvalidInput(APIError):
    status, code = 400, "invalid_input"


class NotFound(APIError):
    status, code = 404, "not_found"


class MethodNotAllowed(APIError):
    status, code = 405, "method_not_allowed"


class NotAcceptable(APIError):
    status, code = 406, "not_acceptable"


class Conflict(APIError):
    status, code = 409, "conflict"


class RequestInProgress(Conflict):
    status, code = 409, "request_in_progress"


class PayloadTooLarge(APIError):
    status, code = 413, "payload_too_large"


class UriTooLong(APIError):
    status, code = 414, "uri_too_long"


class UnsupportedMediaType(APIError):
    status, code = 415, "unsupported_media_type"


class QueueFull(APIError):
    status, code = 429, "queue_full"


class NotReady(APIError):
    status, code = 503, "not_ready"


class StorageUnavailable(NotReady):
    status, code = 503, "storage_unavailable"


class ServerError(APIError):
    status, code = 500, "internal"


class InferenceFailed(ServerError):
    status, code = 500, "inference_failed"


class TimedOut(ServerError):
    status, code = 504, "timed_out"


BY_CODE: dict[str, type[APIError]] = {
    cls.code: cls
    for cls in (
        InvalidInput,
        Unauthorized,
        NotFound,
        MethodNotAllowed,
        NotAcceptable,
        Conflict,
        RequestInProgress,
        PayloadTooLarge,
        UriTooLong,
        UnsupportedMediaType,
        QueueFull,
        NotReady,
        StorageUnavailable,
        ServerError,
        InferenceFailed,
        TimedOut,
    )
}
# The class of an answer without our error document (a proxy's page): the general class of each status.
BY_STATUS: dict[int, type[APIError]] = {
    cls.status: cls
    for cls in (
        InvalidInput,
        Unauthorized,
        NotFound,
        MethodNotAllowed,
        NotAcceptable,
        Conflict,
        PayloadTooLarge,
        UriTooLong,
        UnsupportedMediaType,
        QueueFull,
        NotReady,
        ServerError,
    )
}


class TransportError(ClientError):
    """No answer came back: the service could not be reached, or the exchange broke off or took too long."""

    def __init__(self, message: str, *, url: str, attempts: int) -> None:
        super().__init__(message)
        self.url, self.attempts = url, attempts


class ConnectionFailed(TransportError):
    """Connection refused or reset, closed before the answer, or the host is unknown."""


class RequestTimedOut(TransportError, TimeoutError):
    """Connecting, sending or reading the answer took longer than the client's timeout."""


class JobFailed(ClientError):
    """The job ran and failed; `code` and `message` come from its result document."""

    def __init__(self, job_id: str, code: str, message: str) -> None:
        super().__init__(f"job {job_id} failed: {code}: {message}")
        self.job_id, self.code, self.message = job_id, code, message


class JobCanceled(ClientError):
    """The job was cancelled before it ran."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} was cancelled")
        self.job_id = job_id


class JobExpired(ClientError):
    """The job's deadline passed before a worker started it: it never ran, and never will."""

    def __init__(self, job_id: str, message: str = "") -> None:
        super().__init__(
            f"job {job_id} expired: its deadline passed before a worker started it, so it never ran"
            + (f" ({message})" if message else "")
        )
        self.job_id, self.message = job_id, message


class WaitTimeout(ClientError, TimeoutError):
    """A wait ran out of time; the job or batch goes on running on the server."""

    def __init__(self, what: str, timeout_s: float) -> None:
        super().__init__(f"{what} did not finish within {timeout_s:g} s (it is still running on the server)")
        self.what, self.timeout_s = what, timeout_s
