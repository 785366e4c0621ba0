"""The service's error hierarchy; the API renders any of these as one JSON shape.

   ServiceError (500, internal)
    ├── InvalidInput (400, invalid_input)      a request body or field is wrong; names field and expected
    ├── Unauthorized (401, unauthorized)       API keys are on and the request has no valid one
    ├── NotFound (404, not_found)              unknown or expired job, unknown route
    ├── NotAcceptable (406, not_acceptable)    the result cannot be given in the format asked for
    ├── Conflict (409, conflict)               the job or batch is past (or not yet at) the state the request needs,
    │    │                                     or an Idempotency-Key is reused for a different request
    │    └── RequestInProgress (409, request_in_progress)  the first request with this Idempotency-Key is running
    ├── PayloadTooLarge (413, payload_too_large)
    ├── UnsupportedMediaType (415, unsupported_media_type)
    ├── QueueFull (429, queue_full)            try again after `retry_after` seconds
    ├── InferenceFailed (500, inference_failed) a synchronous (protocol) request's job failed
    ├── NotReady (503, not_ready)              no model published or Redis unreachable
├── StorageUnavailable (503, storage_unavailable) the object store (STORAGE_URL) is unreachable or refuses
    └── TimedOut (504, timed_out)              a synchronous request's job did not finish in time
"""

from __future__ import annotations

from typing import Any

from shared.schema import ErrorCode


class ServiceError(Exception):
    """Base class: an HTTP status, a stable machine-readable code and a sentence for people."""

    status = 500
    code = "internal"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        expected: str | None = None,
        retry_after: float | None = None,
        details: list[Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.expected = expected
        self.retry_after = retry_after
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The JSON body: {"error": {"code", "message", ["field"], ["expected"], ["details"]}}.

        `details` lists the first problems of a bulk upload, e.g. [{"row": 3, "line": 4, "error": "..."}].
        """
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.expected is not None:
            body["expected"] = self.expected
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class InvalidInput(ServiceError):
    status = 400
    code = "invalid_input"


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class NotAcceptable(ServiceError):
    status = 406
    code = "not_acceptable"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class RequestInProgress(Conflict):
    code = "request_in_progress"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    status = 415
    code = "unsupported_media_type"


class QueueFull(ServiceError):
    status = 429
    code = "queue_full"


class NotReady(ServiceError):
    status = 503
    code = "not_ready"


class StorageUnavailable(ServiceError):
    status = 503
    code = "storage_unavailable"


class InferenceFailed(ServiceError):
    status = 500
    code = ErrorCode.INFERENCE_FAILED.value


class TimedOut(ServiceError):
    status = 504
    code = "timed_out"
