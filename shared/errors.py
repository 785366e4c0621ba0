"""The service's error hierarchy; the API renders any of these as one JSON shape.

   ServiceError (500, internal)
    ├── InvalidInput (400, invalid_input)      a request body or field is wrong; names field and expected
    ├── Unauthorized (401, unauthorized)       API keys are on and the request has no valid one
    ├── NotFound (404, not_found)              unknown or purged job or batch, unknown route
    ├── MethodNotAllowed (405, method_not_allowed) the route exists, but not for this method (Allow lists them)
    ├── NotAcceptable (406, not_acceptable)    the result cannot be given in the format asked for
    ├── Conflict (409, conflict)               the job or batch is past (or not yet at) the state the request needs,
    │    │                                     or an Idempotency-Key is reused for a different request
    │    └── RequestInProgress (409, request_in_progress)  the first request with this Idempotency-Key is running
    ├── PayloadTooLarge (413, payload_too_large) a body over MAX_CONTENT_LENGTH (/predict) or MAX_BATCH_BYTES
    ├── UriTooLong (414, uri_too_long)         the path and query string are over 8000 bytes (api/request_line.py)
    ├── UnsupportedMediaType (415, unsupported_media_type)
    ├── QueueFull (429, queue_full)            try again after `retry_after` seconds
    ├── InferenceFailed (500, inference_failed) a synchronous (protocol) request's job failed
    ├── NotReady (503, not_ready)              no model advertised or Redis unreachable
    ├── StorageUnavailable (503, storage_unavailable) the object store (STORAGE_URL) is unreachable or refuses
    └── TimedOut (504, timed_out)              a synchronous request's job did not finish in time

The codes form a closed set (shared/schema.py ApiErrorCode): every error the API answers carries one of them, Werkzeug's
own HTTP errors included (api/error_handler.py maps them with `for_status`); tests/unit/test_vocabulary.py
checks that and the client's copy.
"""

from __future__ import annotations

from typing import Any

from shared.schema import ApiErrorCode


class ServiceError(Exception):
    """Base class: an HTTP status, a stable machine-readable code and a sentence for people."""

    status = 500
    code: str = ApiErrorCode.INTERNAL.value

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
    code = ApiErrorCode.INVALID_INPUT.value


class Unauthorized(ServiceError):
    status = 401
    code = ApiErrorCode.UNAUTHORIZED.value


class NotFound(ServiceError):
    status = 404
    code = ApiErrorCode.NOT_FOUND.value


class MethodNotAllowed(ServiceError):
    status = 405
    code = ApiErrorCode.METHOD_NOT_ALLOWED.value


class NotAcceptable(ServiceError):
    status = 406
    code = ApiErrorCode.NOT_ACCEPTABLE.value


class Conflict(ServiceError):
    status = 409
    code = ApiErrorCode.CONFLICT.value


class RequestInProgress(Conflict):
    code = ApiErrorCode.REQUEST_IN_PROGRESS.value


class PayloadTooLarge(ServiceError):
    status = 413
    code = ApiErrorCode.PAYLOAD_TOO_LARGE.value


class UriTooLong(ServiceError):
    status = 414
    code = ApiErrorCode.URI_TOO_LONG.value


class UnsupportedMediaType(ServiceError):
    status = 415
    code = ApiErrorCode.UNSUPPORTED_MEDIA_TYPE.value


class QueueFull(ServiceError):
    status = 429
    code = ApiErrorCode.QUEUE_FULL.value


class NotReady(ServiceError):
    status = 503
    code = ApiErrorCode.NOT_READY.value


class StorageUnavailable(ServiceError):
    status = 503
    code = ApiErrorCode.STORAGE_UNAVAILABLE.value


class InferenceFailed(ServiceError):
    status = 500
    code = ApiErrorCode.INFERENCE_FAILED.value


class TimedOut(ServiceError):
    status = 504
    code = ApiErrorCode.TIMED_OUT.value


def _subclasses(cls: type[ServiceError]) -> list[type[ServiceError]]:
    return [cls, *(c for sub in cls.__subclasses__() for c in _subclasses(sub))]


ERROR_CLASSES = tuple(_subclasses(ServiceError))
API_ERROR_CODES = frozenset(code.value for code in ApiErrorCode)
# The class for a 4xx raised outside our code (Werkzeug's 404, 405, 413...), by status: the general class of each.
_BY_STATUS = {cls.status: cls for cls in ERROR_CLASSES if cls.__bases__ == (ServiceError,) and cls.status < 500}


def for_status(status: int, message: str) -> ServiceError:
    """Our error for an HTTP `status` that Werkzeug raised: the class of that 4xx; any other 4xx is
    `invalid_input` and any 5xx `internal` (a Werkzeug 5xx is never a known situation), each keeping its status."""
    cls = _BY_STATUS.get(status, InvalidInput if 400 <= status < 500 else ServiceError)
    error = cls(message)
    error.status = status
    return error
