"""Bulk batches, the parts the API and the workers agree on: statuses, the chunk plan, chunk jobs, and the
status document clients read (the files of a batch in storage are named in shared/storage/layout.py).

A batch's accepted rows are stored as one `.npy` per model input. They are processed as chunk jobs of
BATCH_CHUNK_ROWS rows: real RQ jobs on the bulk queue whose payload names the batch and a row range (the
rows themselves stay in storage). Each finished chunk leaves one `.npz` of outputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import numpy as np
import orjson

from shared.keys import BatchField

# What the RQ job records as its function; chunk jobs are run by our micro-batching worker only.
CHUNK_FUNC = "worker.batch_chunk"
# A batch of tiny rows gets bigger chunks rather than hundreds of thousands of RQ jobs.
MAX_CHUNKS = 10_000


@dataclass(frozen=True)
class ChunkSpec:
    """A chunk job's payload: its batch, its index, its accepted-row range, and the model inputs stored."""

    batch: str
    chunk: int
    start: int
    stop: int
    inputs: tuple[str, ...]

    @property
    def rows(self) -> int:
        return self.stop - self.start

    def to_payload(self) -> dict[str, Any]:
        """The JSON-able form stored as the RQ job's argument."""
        return {
            "batch": self.batch,
            "chunk": self.chunk,
            "start": self.start,
            "stop": self.stop,
            "inputs": list(self.inputs),
        }

    @classmethod
    def from_payload(cls, payload: Any) -> ChunkSpec:
        """Read a stored payload; raises ValueError (or KeyError/TypeError) if it is not one."""
        spec = cls(
            str(payload["batch"]),
            int(payload["chunk"]),
            int(payload["start"]),
            int(payload["stop"]),
            tuple(str(name) for name in payload["inputs"]),
        )
        if not 0 <= spec.start < spec.stop:
            raise ValueError(f"chunk rows {spec.start}:{spec.stop} are not a range")
        return spec


class BatchStatus(str, Enum):
    """A batch's status as clients see it (OpenAI Batch API spellings)."""

    VALIDATING = "validating"
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self not in (BatchStatus.VALIDATING, BatchStatus.QUEUED, BatchStatus.IN_PROGRESS)


def utc_now() -> str:
    """Now as ISO 8601 UTC with milliseconds, e.g. 2025-01-31T12:00:00.123Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def chunk_size(accepted_rows: int, chunk_rows: int) -> int:
    """Rows per chunk: BATCH_CHUNK_ROWS, or more if that would make more than MAX_CHUNKS chunks."""
    return max(chunk_rows, math.ceil(accepted_rows / MAX_CHUNKS))


def chunk_ranges(accepted_rows: int, size: int) -> list[tuple[int, int]]:
    """The (start, stop) accepted-row range of every chunk, in order."""
    return [(start, min(start + size, accepted_rows)) for start in range(0, accepted_rows, size)]


def chunk_job_prefix(batch_id: str) -> str:
    """What every chunk job id of a batch starts with."""
    return f"{batch_id}-"


def chunk_job_id(batch_id: str, chunk: int) -> str:
    """The RQ job id of one chunk (derivable, so cancelling needs no list of ids)."""
    return f"{chunk_job_prefix(batch_id)}{chunk}"


def parse_chunk_job_id(job_id: str) -> tuple[str, int]:
    """(batch id, chunk index) of a chunk job id; raises ValueError for another id."""
    batch_id, _, chunk = job_id.rpartition("-")
    return batch_id, int(chunk)


def file_rows(skipped: np.ndarray | None, start: int, stop: int) -> np.ndarray:
    """The file row numbers of accepted rows `start:stop`, given the sorted file rows that were skipped."""
    accepted = np.arange(start, stop, dtype=np.int64)
    if skipped is None or not len(skipped):
        return accepted
    # The j-th skipped row shifts every accepted row at or after index skipped[j] - j by one.
    return accepted + np.searchsorted(skipped - np.arange(len(skipped)), accepted, side="right")


@dataclass(frozen=True)
class BatchRecord:
    """A batch's record in Redis (`keys.batch`, fields `keys.BatchField`), decoded once by `from_redis`."""

    status: BatchStatus
    owner: str = ""
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    expires_at: str | None = None
    callback_url: str = ""
    metadata: Any = None  # the client's JSON, decoded; None when it gave none
    total_rows: int = 0
    accepted_rows: int = 0
    done_rows: int = 0
    failed_rows: int = 0
    chunk_rows: int = 1
    chunks_total: int = 0

    @classmethod
    def from_redis(cls, raw: Mapping[bytes, bytes]) -> BatchRecord:
        """Decode HGETALL's reply (a record being created has only some of the fields yet)."""
        field = {k.decode(): v.decode() for k, v in raw.items()}

        def number(name: BatchField, default: int = 0) -> int:
            return int(field.get(name) or default)

        return cls(
            status=BatchStatus(field[BatchField.STATUS]),
            owner=field.get(BatchField.OWNER, ""),
            created_at=field.get(BatchField.CREATED_AT),
            started_at=field.get(BatchField.STARTED_AT),
            finished_at=field.get(BatchField.FINISHED_AT),
            expires_at=field.get(BatchField.EXPIRES_AT),
            callback_url=field.get(BatchField.CALLBACK_URL, ""),
            metadata=orjson.loads(field[BatchField.METADATA]) if field.get(BatchField.METADATA) else None,
            total_rows=number(BatchField.TOTAL_ROWS),
            accepted_rows=number(BatchField.ACCEPTED_ROWS),
            done_rows=number(BatchField.DONE_ROWS),
            failed_rows=number(BatchField.FAILED_ROWS),
            chunk_rows=number(BatchField.CHUNK_ROWS, 1),
            chunks_total=number(BatchField.CHUNKS_TOTAL),
        )

    def chunk_ranges(self) -> list[tuple[int, int]]:
        """The (start, stop) accepted-row range of every chunk, in order."""
        return chunk_ranges(self.accepted_rows, self.chunk_rows)


def status_document(batch_id: str, record: BatchRecord) -> dict[str, Any]:
    """The document GET /batches/<id> answers (and a webhook posts), from the batch's record."""
    status = record.status
    downloadable = status in (BatchStatus.COMPLETED, BatchStatus.CANCELLED)
    return {
        "id": batch_id,
        "object": "batch",
        "status": status.value,
        "total_rows": record.total_rows,
        "done_rows": record.done_rows,
        "failed_rows": record.failed_rows,
        "created_at": record.created_at,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "expires_at": record.expires_at,
        "output_url": f"/batches/{batch_id}/results" if downloadable else None,
        "errors_url": (
            f"/batches/{batch_id}/errors" if record.failed_rows and status is not BatchStatus.EXPIRED else None
        ),
        "metadata": record.metadata,
    }
