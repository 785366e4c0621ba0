"""The job vocabulary (statuses, error codes) and the result documents that clients read.

Defined once here; the client package keeps copies that tests/unit/test_vocabulary.py checks against these.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson

from shared.signature import ModelRef


class JobStatus(str, Enum):
    """A job's status as clients see it; all but `expired` are RQ's own spellings.

    RQ has no `expired`: such a job is `failed` in RQ's registries, and its document says `expired`.
    """

    QUEUED = "queued"
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.EXPIRED)


class ErrorCode(str, Enum):
    """The `error.code` of a failed or expired job's result."""

    DEADLINE_EXCEEDED = "deadline_exceeded"  # the deadline passed before a worker started it: status `expired`
    WORKER_LOST = "worker_lost"  # workers died with the job in hand MAX_ATTEMPTS times
    INFERENCE_FAILED = "inference_failed"  # the model raised on this job's rows (run on their own)
    INVALID_PAYLOAD = "invalid_payload"  # the job's stored payload could not be decoded
    STORAGE_FAILED = "storage_failed"  # a bulk chunk's rows or outputs could not be read or written
    VERSION_UNAVAILABLE = "version_unavailable"  # the model version the job is pinned to is not served when claimed


class ApiErrorCode(str, Enum):
    """The `error.code` of an API error answer: a closed set, one code per situation (see shared/errors.py,
    which gives each its HTTP status)."""

    INTERNAL = "internal"
    INVALID_INPUT = "invalid_input"
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_ACCEPTABLE = "not_acceptable"
    CONFLICT = "conflict"
    REQUEST_IN_PROGRESS = "request_in_progress"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    URI_TOO_LONG = "uri_too_long"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    QUEUE_FULL = "queue_full"
    INFERENCE_FAILED = ErrorCode.INFERENCE_FAILED.value  # also a job's error code: the same situation
    NOT_READY = "not_ready"
    STORAGE_UNAVAILABLE = "storage_unavailable"
    TIMED_OUT = "timed_out"


@dataclass(frozen=True)
class JobMeta:
    """What a job carries in RQ's `meta` field (JSON): where its webhook goes and the request that made it.

    Written by the API (api/jobs/redis_jobs.py), decoded by the worker's claim; cancel.lua and recover.lua read
    its `callback_url` too.
    """

    callback_url: str | None = None
    request_id: str | None = None

    def encode(self) -> bytes | None:
        """The JSON of the fields set; None when none is (the field is then not written)."""
        fields = {k: v for k, v in (("callback_url", self.callback_url), ("request_id", self.request_id)) if v}
        return orjson.dumps(fields) if fields else None

    @classmethod
    def decode(cls, raw: bytes | None) -> JobMeta:
        """The meta of a job hash's `meta` field (absent: none set)."""
        fields = orjson.loads(raw) if raw else {}
        return cls(fields.get("callback_url"), fields.get("request_id"))


@dataclass(frozen=True)
class JobError:
    """Why a job did not finish."""

    code: ErrorCode
    message: str

    @property
    def status(self) -> JobStatus:
        """The status the job ends in: `expired` for a missed deadline, else `failed`."""
        return JobStatus.EXPIRED if self.code is ErrorCode.DEADLINE_EXCEEDED else JobStatus.FAILED


def finished_doc(job_id: str, predictions: Any, model: ModelRef) -> dict[str, Any]:
    """The document of a finished job."""
    return {"id": job_id, "status": JobStatus.FINISHED.value, "predictions": predictions, "model": model.to_dict()}


def error_doc(job_id: str, error: JobError, model: ModelRef | None = None) -> dict[str, Any]:
    """The document of a job that did not finish (`failed` or `expired`); `error` has the shape of API errors."""
    doc: dict[str, Any] = {
        "id": job_id,
        "status": error.status.value,
        "error": {"code": error.code.value, "message": error.message},
    }
    if model is not None:
        doc["model"] = model.to_dict()
    return doc


def canceled_doc(job_id: str) -> dict[str, Any]:
    """The document of a job cancelled before it started."""
    return {"id": job_id, "status": JobStatus.CANCELED.value}


class OrjsonSerializer:
    """RQ serializer for job data and results: JSON via orjson, so nothing is ever unpickled."""

    @staticmethod
    def dumps(obj: Any) -> bytes:
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)

    @staticmethod
    def loads(data: bytes | str) -> Any:
        return orjson.loads(data)
