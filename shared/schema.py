"""The job status vocabulary and the status documents that clients read."""

from __future__ import annotations

from enum import Enum
from typing import Any

import orjson


class JobStatus(str, Enum):
    """A job's status as clients see it; the first four are RQ's own spellings."""

    QUEUED = "queued"
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELED)


def finished_doc(job_id: str, predictions: Any, model: dict[str, str]) -> dict[str, Any]:
    """The document of a finished job."""
    return {"id": job_id, "status": JobStatus.FINISHED.value, "predictions": predictions, "model": model}


def failed_doc(job_id: str, code: str, message: str, model: dict[str, str] | None = None) -> dict[str, Any]:
    """The document of a failed job; `error` has the same shape as API errors."""
    doc: dict[str, Any] = {"id": job_id, "status": JobStatus.FAILED.value, "error": {"code": code, "message": message}}
    if model is not None:
        doc["model"] = model
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
