"""What the client raises. API errors mirror the server's error codes; both clients raise the same classes.

    ClientError                          anything this package raises on purpose
     ├── APIError                        the server answered with an error document (status, code, message)
     │    ├── InvalidInput (400)         invalid_input: `field`, `expected`, and for uploads `details`
     │    ├── NotFound (404)             not_found: unknown or expired job or batch
     │    ├── NotAcceptable (406)        not_acceptable: e.g. .npy results of a multi-output model
     │    ├── Conflict (409)             conflict: e.g. cancelling a finished job, results of a running batch
     │    ├── PayloadTooLarge (413)      payload_too_large
     │    ├── UnsupportedMediaType (415) unsupported_media_type
     │    ├── QueueFull (429)            queue_full (retried first, honouring Retry-After)
     │    ├── NotReady (503)             not_ready (retried first, honouring Retry-After)
     │    └── ServerError (5xx)          internal, or a proxy's error page
     ├── JobFailed                       the job ran and failed: `code`, `message`
     ├── JobCanceled                     the job was cancelled before it ran
     └── WaitTimeout (also TimeoutError) a wait ran out of time; names the job or batch
"""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Base class of every error this package raises on purpose."""


class APIError(ClientError):
    """The server answered with an error: its HTTP status, stable code and message."""

    status = 0
    code = ""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None, field: str | None = None,
                 expected: str | None = None, details: list[Any] | None = None, retry_after: float | None = None) -> None:
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


class InvalidInput(APIError):
    status, code = 400, "invalid_input"


class NotFound(APIError):
    status, code = 404, "not_found"


class NotAcceptable(APIError):
    status, code = 406, "not_acceptable"


class Conflict(APIError):
    status, code = 409, "conflict"


class PayloadTooLarge(APIError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(APIError):
    status, code = 415, "unsupported_media_type"


class QueueFull(APIError):
    status, code = 429, "queue_full"


class NotReady(APIError):
    status, code = 503, "not_ready"


class ServerError(APIError):
    status, code = 500, "internal"


BY_CODE: dict[str, type[APIError]] = {
    cls.code: cls for cls in (InvalidInput, NotFound, NotAcceptable, Conflict, PayloadTooLarge, UnsupportedMediaType,
                              QueueFull, NotReady, ServerError)
}
BY_STATUS: dict[int, type[APIError]] = {cls.status: cls for cls in BY_CODE.values()}


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


class WaitTimeout(ClientError, TimeoutError):
    """A wait ran out of time; the job or batch goes on running on the server."""

    def __init__(self, what: str, timeout_s: float) -> None:
        super().__init__(f"{what} did not finish within {timeout_s:g} s (it is still running on the server)")
        self.what, self.timeout_s = what, timeout_s
