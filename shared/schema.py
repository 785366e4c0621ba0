"""The job status vocabulary and the status documents that clients read."""

from __future__ import annotations

from enum import Enum
from typing import Any

import orjson


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


# Error codes on failed documents that the worker and its maintenance step write.
DEADLINE_EXCEEDED = "deadline_exceeded"  # the job's deadline passed before a worker started it: status `expired`
WORKER_LOST = "worker_lost"  # workers died with the job in hand MAX_ATTEMPTS times
STORAGE_FAILED = "storage_failed"  # a bulk chunk's files could not be read or written, on each of its attempts


def finished_doc(job_id: str, predictions: Any, model: dict[str, str]) -> dict[str, Any]:
    """The document of a finished job."""
    return {"id": job_id, "status": JobStatus.FINISHED.value, "predictions": predictions, "model": model}


def failed_doc(job_id: str, code: str, message: str, model: dict[str, str] | None = None) -> dict[str, Any]:
    """The document of a failed job; `error` has the same shape as API errors."""
    doc: dict[str, Any] = {"id": job_id, "status": JobStatus.FAILED.value, "error": {"code": code, "message": message}}
    if model is not None:
        doc["model"] = model
    return doc


def outcome_doc(job_id: str, code: str, message: str, model: dict[str, str] | None = None) -> dict[str, Any]:
    """The document of a job that did not finish: `expired` for DEADLINE_EXCEEDED, else `failed`."""
    doc = failed_doc(job_id, code, message, model)
    if code == DEADLINE_EXCEEDED:
        doc["status"] = JobStatus.EXPIRED.value
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
